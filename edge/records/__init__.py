"""Event records, one plug-in per file registered in RECORDERS, all behind one RecordSink.

sink = open_records({"jsonl": "events.jsonl", "sqlite": "events.db"}, RotationPolicy(...))
sink.write(Event(kind="detection", ...))   # never raises: failures are logged and counted
sink.flush(); sink.close()
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from edge.errors import CctvkitError
from edge.records.base import Recorder, RotationPolicy, enforce_caps, rotated_files
from edge.records.events import Event, PresenceTracker
from edge.records.jsonl import JsonlRecorder
from edge.records.sqlite import SqliteRecorder

log = logging.getLogger(__name__)

RECORDERS: dict[str, type[Recorder]] = {
    "jsonl": JsonlRecorder,
    "sqlite": SqliteRecorder,
}

# Errors a full or broken disk produces; anything else is a bug and should surface.
WRITE_ERRORS = (OSError, sqlite3.Error)


class RecordSink:
    """Writes each event to every recorder. A recorder that fails (disk full, file system gone) is
    logged at most once per `log_every_s` and counted in `errors`; the others and the daemon go on."""

    def __init__(self, recorders: list[Recorder], log_every_s: float = 30.0):
        self.recorders = recorders
        self.errors = 0
        self.written = 0  # events at least one recorder took (a later failed SQLite commit counts in errors)
        self.log_every_s = log_every_s
        self._last_log: dict[str, float] = {}

    def _failed(self, rec: Recorder, what: str, e: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_log.get(rec.name, float("-inf")) >= self.log_every_s:
            self._last_log[rec.name] = now
            log.error("records: %s %s to %s failed (%s); %d write error(s) so far, inference goes on",
                      rec.name, what, rec.path, e, self.errors)

    def write(self, event: Event) -> None:
        stored = False
        for rec in self.recorders:
            try:
                rec.write(event)
                stored = True
            except WRITE_ERRORS as e:
                self._failed(rec, "write", e)
        self.written += stored  # events kept by at least one recorder

    def flush(self) -> None:
        for rec in self.recorders:
            try:
                rec.flush()
            except WRITE_ERRORS as e:
                self._failed(rec, "flush", e)

    def close(self) -> None:
        for rec in self.recorders:
            try:
                rec.close()
            except WRITE_ERRORS as e:
                self._failed(rec, "close", e)


def open_records(paths: Mapping[str, str | Path | None], policy: RotationPolicy) -> RecordSink:
    """A sink over the recorders named in `paths` (name -> file; None leaves that one out)."""
    recorders = []
    for name, path in paths.items():
        if path is None:
            continue
        cls = RECORDERS.get(name)
        if cls is None:
            raise CctvkitError(f"unknown record format '{name}'", fix=f"use one of: {', '.join(RECORDERS)}")
        try:
            recorders.append(cls(path, policy))
        except WRITE_ERRORS as e:
            raise CctvkitError(f"cannot open {name} records ({e})", path,
                               "point records at a writable directory (systemd: StateDirectory=)") from e
    return RecordSink(recorders)


__all__ = [
    "RECORDERS",
    "Event",
    "PresenceTracker",
    "RecordSink",
    "Recorder",
    "RotationPolicy",
    "enforce_caps",
    "open_records",
    "rotated_files",
]
