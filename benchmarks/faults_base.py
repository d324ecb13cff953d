"""What every scenario of the fault suite shares: its settings, its figures and failures, the edge.yaml it
writes, and the checks every run ends with (a clean SIGTERM, the records read back whole)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _daemon import STOP_LIMIT_S, EdgeDaemon, free_port, write_yaml
from faults_records import read_jsonl, read_sqlite


@dataclass(frozen=True)
class Setup:
    """Settings every scenario gets from the command line."""

    model: dict[str, object]  # edge.yaml's model: section
    video: Path
    work: Path  # a folder of the scenario's own (config, log, records)
    watchdog_s: float
    ready_timeout: float
    seed: int


@dataclass
class Outcome:
    scenario: str
    figures: list[tuple[str, Any, str]] = field(default_factory=list)  # (figure, value, limit or note)
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    def add(self, name: str, value: Any, limit: str = "") -> None:
        self.figures.append((name, value, limit))

    def check(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
        return ok

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "passed": self.passed and self.skipped is None,
                "skipped": self.skipped, "seconds": round(self.seconds, 1),
                "figures": {name: value for name, value, _ in self.figures},
                "limits": {name: limit for name, _, limit in self.figures if limit},
                "failures": self.failures}


def edge_config(setup: Setup, work: Path, source: dict[str, object], records: Path, *,
                port: int | None = None, records_extra: dict[str, object] | None = None,
                capture: dict[str, object] | None = None) -> tuple[Path, int]:
    """Write work/edge.yaml: JSONL + SQLite records in `records`, /metrics on a free loopback port, the
    watchdog on; returns (its path, the port)."""
    port = free_port() if port is None else port
    cfg: dict[str, object] = {
        "model": setup.model,
        "source": source,
        "records": {"jsonl": str(records / "events.jsonl"), "sqlite": str(records / "events.db"),
                    **(records_extra or {})},
        "http": {"host": "127.0.0.1", "port": port},
        "watchdog": {"enabled": True},
        "log_level": "info",
    }
    if capture:
        cfg["capture"] = capture
    return write_yaml(work / "edge.yaml", cfg), port


def vtest_source(setup: Setup) -> dict[str, object]:
    """The video looping at its own frame rate, like a camera."""
    return {"type": "file", "path": str(setup.video.resolve()), "loop": True, "realtime": True}


def start_ready(daemon: EdgeDaemon, setup: Setup, out: Outcome) -> float | None:
    """Start the daemon and wait for READY=1; a failure (with the log's tail) when it never comes."""
    daemon.start()
    ready = daemon.wait_ready(setup.ready_timeout)
    if ready is None:
        out.failures.append(f"the daemon never sent READY=1 (exit code {daemon.returncode}); log tail:\n"
                            + daemon.log_tail(1500))
    return ready


def finish(daemon: EdgeDaemon, out: Outcome, records: Path, *, since: float | None = None) -> None:
    """The checks every scenario ends with: alive until now, SIGTERM -> exit 0 within 2 s, the watchdog
    pings never late, every JSONL line whole and every SQLite file intact."""
    alive = daemon.alive
    out.add("daemon alive at the end", alive, "must be True")
    out.check(alive, f"the daemon died (exit code {daemon.returncode}) before the end; see {daemon.log_path}")
    listener = daemon.listener
    if listener is not None:
        listener.poll()
        gap = listener.max_gap(since)
        out.add("longest WATCHDOG=1 gap (s)", None if gap is None else round(gap, 2),
                f"< WatchdogSec {daemon.watchdog_s:g}")
        out.check(gap is not None and gap < daemon.watchdog_s,
                  f"watchdog pings missing or late (longest gap {gap}) for WatchdogSec {daemon.watchdog_s:g}")
    if alive:
        code, seconds = daemon.stop()
        out.add("SIGTERM -> exit code", code, "0")
        out.add("SIGTERM -> exit (s)", None if seconds is None else round(seconds, 2), f"<= {STOP_LIMIT_S:g}")
        out.check(code == 0 and seconds is not None and seconds <= STOP_LIMIT_S,
                  f"SIGTERM -> exit {code} after {seconds} s (want 0 within {STOP_LIMIT_S:g} s)")
    check_records(out, records)


def check_records(out: Outcome, records: Path) -> tuple[int, int]:
    """Every JSONL line parses and every SQLite file passes integrity_check; returns (lines, rows)."""
    jsonl, db = read_jsonl(records), read_sqlite(records)
    out.add("JSONL lines / broken", f"{jsonl.lines} / {len(jsonl.broken)}", "0 broken")
    out.check(not jsonl.broken, f"broken JSONL lines {jsonl.broken[:5]}")
    out.add("SQLite rows / files failing integrity_check", f"{len(db.rows)} / {len(db.bad)}", "0 failing")
    out.check(not db.bad, f"SQLite integrity_check failed: {db.bad}")
    out.add("events in JSONL, not in SQLite / in SQLite, not in JSONL",
            f"{len(jsonl.keys() - db.keys())} / {len(db.keys() - jsonl.keys())}")
    return jsonl.lines, len(db.rows)


def wait_for(predicate: Any, timeout: float, daemon: EdgeDaemon, every: float = 0.1) -> float | None:
    """Seconds until predicate() is true (polling the notify socket meanwhile); None after `timeout` or
    when the daemon died."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and daemon.alive:
        if predicate():
            return time.monotonic() - t0
        daemon.sleep(every)
    return None
