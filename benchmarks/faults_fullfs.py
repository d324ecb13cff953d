"""Fault scenario `fullfs`: the records (JSONL + SQLite) on a tmpfs of a few MB that fills up.

The tmpfs is mounted on the scenario's records folder (needs root; the scenario is skipped, saying so,
when mount fails). Records flow, then a filler file takes all but --free-kb of the space, so the daemon's
own writes run it full within a minute; it stays full for --hold-s, then the filler is deleted and the
records must resume. The caps (max_total_mb, keep) are far above the file system's size, as on a
card whose size nobody checked: nothing but the disk stops the writes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from _daemon import EdgeDaemon, scrape
from faults_base import (
    Outcome,
    Setup,
    check_records,
    edge_config,
    finish,
    start_ready,
    vtest_source,
    wait_for,
)
from faults_records import read_jsonl, read_sqlite
from rich.console import Console

console = Console()
FILL_TIMEOUT_S = 180.0
RESUME_TIMEOUT_S = 30.0


def mount_tmpfs(where: Path, size_mb: float) -> str | None:
    """None when mounted, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size_mb * 1024)}k", "tmpfs", str(where)],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


def unmount(where: Path) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=20).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=20)


def free_bytes(where: Path) -> int:
    st = os.statvfs(where)
    return st.f_bavail * st.f_frsize


def fill(where: Path, leave: int) -> Path:
    """A filler file taking all the free space of `where` but `leave` bytes."""
    filler = where / "filler.bin"
    todo = max(0, free_bytes(where) - leave)
    chunk = b"\0" * 65536
    # OSError: the daemon wrote meanwhile and the disk is full a little earlier: fine.
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while todo > 0:
            todo -= f.write(chunk[: min(len(chunk), todo)])
    return filler


def scenario_fullfs(setup: Setup, size_mb: float, free_kb: float, hold_s: float) -> Outcome:
    out = Outcome("fullfs")
    records = setup.work / "records"
    why = mount_tmpfs(records, size_mb)
    if why is not None:
        out.skipped = f"cannot mount a {size_mb:g} MB tmpfs on {records} ({why}); run as root to include it"
        return out
    try:
        run_full(setup, out, records, size_mb, free_kb, hold_s)
    finally:
        unmount(records)
    return out


def run_full(setup: Setup, out: Outcome, records: Path, size_mb: float, free_kb: float, hold_s: float) -> None:
    config, port = edge_config(setup, setup.work, vtest_source(setup), records,
                               records_extra={"rotate_mb": 1, "max_total_mb": 1000, "keep": 1000})
    daemon = EdgeDaemon(config, setup.work, watchdog_s=setup.watchdog_s)
    out.add("file system", f"tmpfs {size_mb:g} MB; filler leaves {free_kb:g} KB")
    try:
        if start_ready(daemon, setup, out) is None:
            return
        flowing = wait_for(lambda: scrape(port).get("records_written", 0) > 0, 60, daemon)
        if not out.check(flowing is not None, "no record written within 60 s of READY (nobody in view?)"):
            return
        filler = fill(records, int(free_kb * 1024))
        console.print(f"  records flow; filler written, {free_bytes(records) // 1024} KB left")
        full_s = wait_for(lambda: scrape(port).get("record_errors", 0) > 0, FILL_TIMEOUT_S, daemon, 0.5)
        out.add("filler -> first record error (s)", None if full_s is None else round(full_s, 1))
        if not out.check(full_s is not None, f"no record error within {FILL_TIMEOUT_S:g} s: the disk never filled"):
            return
        # Full: the loop must go on (frames, watchdog), the errors counted, no file broken.
        m0, t0 = scrape(port), time.monotonic()
        console.print(f"  full; holding {hold_s:g} s")
        daemon.sleep(hold_s)
        m1, t1 = scrape(port), time.monotonic()
        fps = (m1.get("frames_processed", 0) - m0.get("frames_processed", 0)) / (t1 - t0)
        out.add("frames processed/s while full", round(fps, 2), "> 0")
        out.check(fps > 0, "no frame processed while the disk was full")
        out.add("record errors while full (/metrics)",
                f"{m1.get('record_errors', 0) - m0.get('record_errors', 0):.0f} in {hold_s:g} s"
                f" (total {m1.get('record_errors', 0):.0f})")
        out.add("records written while full (/metrics)", f"{m1.get('records_written', 0) - m0.get('records_written', 0):.0f}")
        lines_full = read_jsonl(records)
        out.add("JSONL broken lines while full", len(lines_full.broken), "0")
        out.check(not lines_full.broken, f"broken JSONL lines while full: {lines_full.broken[:5]}")
        recover(daemon, out, records, port, filler)
        finish(daemon, out, records)
        out.add("free space at the end (KB)", free_bytes(records) // 1024)
    finally:
        daemon.close()
        # The reader's own checks once the daemon is gone, before the tmpfs goes.
        if not any(name.startswith("JSONL lines") for name, _, _ in out.figures) and records.is_dir():
            check_records(out, records)


def recover(daemon: EdgeDaemon, out: Outcome, records: Path, port: int, filler: Path) -> None:
    """Delete the filler; records must reach both files again, and the errors stop."""
    base_keys = read_jsonl(records).keys()
    freed_wall = time.time()
    filler.unlink()
    freed = time.monotonic()
    errors_at_free = scrape(port).get("record_errors", 0)
    console.print("  filler deleted: waiting for records to resume")
    resumed: dict[str, float] = {}

    def both_resumed() -> bool:
        # Read while the daemon runs: a new JSONL line, and a row committed since the space came back.
        if "jsonl" not in resumed and read_jsonl(records).keys() - base_keys:
            resumed["jsonl"] = time.monotonic() - freed
        if "sqlite" not in resumed and any(ts > freed_wall for _, ts, _, _ in read_sqlite(records).rows):
            resumed["sqlite"] = time.monotonic() - freed
        return len(resumed) == 2

    wait_for(both_resumed, RESUME_TIMEOUT_S, daemon, 0.2)
    for store, what in (("jsonl", "JSONL line"), ("sqlite", "SQLite row committed")):
        took = resumed.get(store)
        out.add(f"space freed -> next {what} (s)", None if took is None else round(took, 2))
        out.check(took is not None, f"no {what} within {RESUME_TIMEOUT_S:g} s of freeing space")
    # Errors must stop once there is room: none in the last 5 s of a 10 s settle.
    daemon.sleep(5.0)
    e_mid = scrape(port).get("record_errors", 0)
    daemon.sleep(5.0)
    e_end = scrape(port).get("record_errors", 0)
    out.add("record errors after the space came back: first 5 s / next 5 s",
            f"{e_mid - errors_at_free:.0f} / {e_end - e_mid:.0f}", "0 in the next 5 s")
    out.check(e_end == e_mid, f"{e_end - e_mid:.0f} record errors 5-10 s after the space came back")
