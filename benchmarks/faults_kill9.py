"""Fault scenario `kill9`: --kills times, start the daemon, wait until records flow, SIGKILL it at a random
moment while it writes, and read every record back before the next start.

After each kill the reader parses every JSONL line and runs PRAGMA integrity_check on every SQLite file,
then compares the stores: JSONL lines reach the kernel at once, SQLite rows are committed in batches of
at most records.flush_every_s, so the rows a kill may cost are those of the last batch. An event in JSONL
but not in SQLite is lost "in the batch" when its time stamp is within flush_every_s + BATCH_SLACK_S of
the kill (one loop turn: a 0.25 s frame wait and one inference), and lost outside it otherwise: a failure.

A torn JSONL tail left by a kill is reported; it must be gone after the next start (the daemon cuts a
torn tail when it opens the file), so a broken line seen anywhere but at the live file's end fails.
After the last kill one more start ends with SIGTERM, and the whole set is read once more.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from _daemon import EdgeDaemon, scrape
from faults_base import Outcome, Setup, edge_config, finish, start_ready, vtest_source, wait_for
from faults_records import Key, read_jsonl, read_sqlite
from rich.console import Console

console = Console()
BATCH_SLACK_S = 0.5
FLUSH_EVERY_S = 1.0  # records.flush_every_s's default: what a user's config gets


def scenario_kill9(setup: Setup, kills: int) -> Outcome:
    out = Outcome("kill9")
    work, records = setup.work, setup.work / "records"
    config, port = edge_config(setup, work, vtest_source(setup), records,
                               records_extra={"rotate_mb": 1, "max_total_mb": 1000, "keep": 1000,
                                              "flush_every_s": FLUSH_EVERY_S})
    rng = random.Random(setup.seed)
    daemon = EdgeDaemon(config, work, watchdog_s=setup.watchdog_s)
    ready_s: list[float] = []
    lost_in_batch: list[int] = []  # per kill
    oldest_lost_age: list[float] = []  # per kill with a loss: seconds between the oldest lost event and the kill
    outside: list[tuple[int, Key, float]] = []  # (kill, event, age)
    torn_after_kill = 0
    broken_inside: set[tuple[str, int]] = set()
    bad_db: list[str] = []
    hot_journals = 0
    rate: list[float] = []  # events/s in the 3 s before each kill
    missing_before: set[Key] = set()
    try:
        for k in range(1, kills + 1):
            lines_before = read_jsonl(records).lines
            if (ready := start_ready(daemon, setup, out)) is None:
                return out
            ready_s.append(ready)
            flowing = wait_for(lambda n=lines_before: read_jsonl(records).lines > n + 2, 60, daemon, 0.1)
            if not out.check(flowing is not None, f"start {k}: no record within 60 s of READY"):
                return out
            daemon.sleep(rng.uniform(0.2, 3.0))
            killed_at = time.time()
            daemon.kill9()
            jsonl, db = read_jsonl(records), read_sqlite(records)
            torn_after_kill += jsonl.torn_tail
            broken_inside |= {(f, n) for f, n, last in jsonl.broken if not last}
            hot_journals += db.hot_journals
            bad_db += [f"kill {k}: {f}: {why}" for f, why in db.bad.items()]
            rate.append(sum(killed_at - 3.0 <= float(e["ts"]) <= killed_at for e in jsonl.events) / 3.0)
            missing = jsonl.keys() - db.keys()
            new = missing - missing_before
            missing_before = missing
            lost_in_batch.append(0)
            ages = []
            for key in new:
                age = killed_at - key[1]
                ages.append(age)
                if age <= FLUSH_EVERY_S + BATCH_SLACK_S:
                    lost_in_batch[-1] += 1
                else:
                    outside.append((k, key, age))
            if ages:
                oldest_lost_age.append(max(ages))
            console.print(f"  kill {k:2d}: READY {ready:.2f} s, JSONL {jsonl.lines} lines, SQLite {len(db.rows)} rows,"
                          f" {len(new)} not in SQLite" + (", torn JSONL tail" if jsonl.torn_tail else ""))
        # One more start: it must open what the kills left (cut a torn tail) and stop cleanly.
        lines_before = read_jsonl(records).lines
        if (ready := start_ready(daemon, setup, out)) is not None:
            ready_s.append(ready)
            wait_for(lambda: read_jsonl(records).lines > lines_before + 2, 60, daemon, 0.1)
            daemon.sleep(setup.watchdog_s)  # long enough for watchdog pings to be measured
            out.add("records_written of the last start (/metrics)", scrape(port).get("records_written"))
            finish_run(daemon, out, records, missing_before)
    finally:
        daemon.close()
    summarise(out, kills, ready_s, lost_in_batch, oldest_lost_age, outside, torn_after_kill, broken_inside,
              bad_db, hot_journals, rate)
    return out


def finish_run(daemon: EdgeDaemon, out: Outcome, records: Path, missing_before: set[Key]) -> None:
    finish(daemon, out, records)
    jsonl, db = read_jsonl(records), read_sqlite(records)
    lost_clean = len((jsonl.keys() - db.keys()) - missing_before)
    out.add("events of the SIGTERM'd last start missing from SQLite", lost_clean, "0")
    out.check(lost_clean == 0, f"{lost_clean} events of a clean SIGTERM stop are not in SQLite")


def summarise(out: Outcome, kills: int, ready_s: list[float], lost_in_batch: list[int], oldest_lost_age: list[float],
              outside: list[tuple[int, Key, float]], torn_after_kill: int, broken_inside: set[tuple[str, int]],
              bad_db: list[str], hot_journals: int, rate: list[float]) -> None:
    done = len(lost_in_batch)
    out.add("kills done", f"{done} of {kills}")
    out.check(done == kills, f"only {done} of {kills} kills done")
    if ready_s:
        out.add("restart -> READY=1: median / max (s)", f"{statistics.median(ready_s):.2f} / {max(ready_s):.2f}")
    if rate:
        out.add("event rate before a kill: median (events/s)", round(statistics.median(rate), 1))
    if lost_in_batch:
        out.add("SQLite rows lost in the last batch: total / max per kill", f"{sum(lost_in_batch)} / {max(lost_in_batch)}",
                f"<= events of flush_every_s {FLUSH_EVERY_S:g} s")
    if oldest_lost_age:
        out.add("oldest lost row's age at the kill (s)", round(max(oldest_lost_age), 2),
                f"<= flush_every_s + {BATCH_SLACK_S:g}")
    out.add("events lost outside the batch", len(outside), "0")
    out.check(not outside, f"{len(outside)} events missing from SQLite older than the batch, e.g. "
                           + ", ".join(f"kill {k}: {key[0]} frame {key[2]} {age:.1f} s old" for k, key, age in outside[:3]))
    out.add("torn JSONL tails right after a kill", torn_after_kill, "reported (cut on the next start)")
    out.add("broken JSONL lines left after the next start", len(broken_inside), "0")
    out.check(not broken_inside, f"broken JSONL lines not cut by the next start: {sorted(broken_inside)[:5]}")
    out.add("SQLite hot journals found after a kill", hot_journals, "rolled back on open")
    out.add("SQLite integrity_check failures after a kill", len(bad_db), "0")
    out.check(not bad_db, "; ".join(bad_db[:3]))
