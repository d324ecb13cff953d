"""The fault suite's reader: every record the daemon left, read back from its JSONL and SQLite files.

Every JSONL line must parse; every SQLite file must pass PRAGMA integrity_check. An event is identified by
(kind, ts, frame, state) in both stores (ts is the same float: JSON writes its repr, SQLite a REAL), so the
events one store has and the other lacks can be listed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, float, int, str | None]

JSONL_NAME = "events.jsonl"
SQLITE_NAME = "events.db"


def record_files(records: Path, live_name: str) -> list[Path]:
    """The live file and its rotated siblings (events.<stamp>.jsonl), oldest first, the live one last."""
    live = records / live_name
    stem, suffix = live.stem, live.suffix
    rotated = sorted(p for p in records.glob(f"{stem}.*{suffix}") if p != live)
    return rotated + ([live] if live.exists() else [])


@dataclass
class JsonlScan:
    lines: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    broken: list[tuple[str, int, bool]] = field(default_factory=list)  # (file, line number, is the last line)
    size: int = 0  # bytes of the live file

    @property
    def torn_tail(self) -> bool:
        """The live file's last line is cut (no newline, or no JSON): what a kill mid-write leaves."""
        return any(last for _, _, last in self.broken)

    @property
    def broken_inside(self) -> int:
        """Broken lines that are not the very last line of the live file."""
        return sum(not last for _, _, last in self.broken)

    def keys(self) -> set[Key]:
        return {event_key(e) for e in self.events}


def event_key(e: dict[str, Any]) -> Key:
    state = e.get("state")
    return (str(e["kind"]), float(e["ts"]), int(e["frame"]), None if state is None else str(state))


def read_jsonl(records: Path) -> JsonlScan:
    scan = JsonlScan()
    files = record_files(records, JSONL_NAME)
    for f in files:
        data = f.read_bytes()
        if f.name == JSONL_NAME:
            scan.size = len(data)
        chunks = data.split(b"\n")
        complete, tail = chunks[:-1], chunks[-1]  # tail: bytes after the last newline ('' when whole)
        for i, raw in enumerate(complete, 1):
            scan.lines += 1
            try:
                event = json.loads(raw)
                event_key(event)
            except (ValueError, KeyError, TypeError):
                scan.broken.append((f.name, i, f.name == JSONL_NAME and i == len(complete) and not tail))
                continue
            scan.events.append(event)
        if tail:
            scan.lines += 1
            scan.broken.append((f.name, len(complete) + 1, f.name == JSONL_NAME))
    return scan


@dataclass
class SqliteScan:
    files: int = 0
    rows: list[Key] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # file -> integrity_check result (or the error)
    hot_journals: int = 0  # rollback journals found next to a database (a transaction cut by a kill)

    def keys(self) -> set[Key]:
        return set(self.rows)


def read_sqlite(records: Path) -> SqliteScan:
    """Opened read-write as the daemon's next start would: SQLite rolls a hot journal back on open."""
    scan = SqliteScan()
    for f in record_files(records, SQLITE_NAME):
        scan.files += 1
        if f.with_name(f.name + "-journal").exists():
            scan.hot_journals += 1
        try:
            db = sqlite3.connect(f, timeout=5.0)
            try:
                result = [r[0] for r in db.execute("PRAGMA integrity_check")]
                if result != ["ok"]:
                    scan.bad[f.name] = "; ".join(map(str, result))[:200]
                for kind, ts, frame, state in db.execute("SELECT kind, ts, frame, state FROM events"):
                    scan.rows.append((kind, float(ts), int(frame), state))
            finally:
                db.close()
        except sqlite3.Error as e:
            scan.bad[f.name] = f"{type(e).__name__}: {e}"
    return scan


def presence_counts(scan: JsonlScan) -> dict[str, int]:
    """Presence records by state ('appeared', 'left', and whatever else the daemon writes)."""
    out: dict[str, int] = {}
    for e in scan.events:
        if e.get("kind") == "presence":
            state = str(e.get("state"))
            out[state] = out.get(state, 0) + 1
    return out
