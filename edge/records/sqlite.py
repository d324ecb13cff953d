"""SQLite records: table `events`, one row per event, committed in batches.

A commit per event would cost an fsync each on an SD card; rows are committed at most every
`commit_every_s` and always on flush() (which the daemon calls at shutdown).

A database from before a column existed is opened as it is and gains the column (NULL in its old rows),
so an upgrade keeps the history and old queries keep working.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

from edge.records.base import Recorder, RotationPolicy
from edge.records.events import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,          -- seconds since the epoch
    kind TEXT NOT NULL,        -- 'detection' | 'presence'
    frame INTEGER NOT NULL,
    count INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    state TEXT,                -- 'appeared' | 'left' for presence events
    person_prob REAL,
    boxes TEXT NOT NULL,       -- JSON [[x1, y1, x2, y2], ...] in frame pixels
    scores TEXT NOT NULL,      -- JSON [score, ...]
    reason TEXT                -- why a presence ended without a person leaving: 'camera_lost' | 'shutdown'
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
# Columns added after the first release: (name, SQL type), added to an older database on open.
ADDED_COLUMNS = (("reason", "TEXT"),)


class SqliteRecorder(Recorder):
    name = "sqlite"

    def __init__(self, path: str | Path, policy: RotationPolicy | None = None, commit_every_s: float = 1.0):
        self.commit_every_s = commit_every_s
        self._db: sqlite3.Connection | None = None
        self._pending = 0
        self._last_commit = time.monotonic()
        super().__init__(path, policy)

    def _open(self) -> None:
        # check_same_thread=False: a recorder may be made on one thread and used on another (the daemon
        # run on a thread, in tests); its user serialises every call.
        self._db = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False)
        self._db.executescript(SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
        self._db.commit()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def write(self, event: Event) -> None:
        self.ensure_open()
        assert self._db is not None
        try:
            self._db.execute(
                "INSERT INTO events (ts, kind, frame, count, latency_ms, state, person_prob, boxes, scores,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.ts, event.kind, event.frame, event.count, event.latency_ms, event.state,
                 event.person_prob, json.dumps(event.boxes), json.dumps(event.scores), event.reason),
            )
        except sqlite3.Error:
            # SQLITE_FULL can abort the whole open transaction: start the next batch from a clean state.
            self._rollback()
            raise
        self._pending += 1
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.flush()

    def _rollback(self) -> None:
        self._pending = 0
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()

    def flush(self) -> None:
        if self._db is None or self._pending == 0:
            return
        self._last_commit = time.monotonic()
        try:
            self._db.commit()
        except sqlite3.Error:
            # Disk full mid-commit: drop this batch rather than retrying it forever with more rows piled on.
            self._rollback()
            raise
        self.written += self._pending
        self._pending = 0
        self.maybe_rotate()
