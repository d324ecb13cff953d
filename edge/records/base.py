"""What every record writer provides, and the rotation both share.

The live file keeps its configured name (events.jsonl); when it grows past `rotate_bytes` it is renamed to
events.20261122T031500.123456.jsonl and a new live file starts. Rotated files are deleted oldest first
while there are more than `keep` of them or all files together exceed `max_total_bytes`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from edge.records.events import Event

log = logging.getLogger(__name__)


# How often a recorder whose file could not be opened (disk full) tries again.
REOPEN_EVERY_S = 5.0
SQLITE_FULL = 13


def disk_full(e: BaseException) -> bool:
    """True for the errors a full disk (or an exhausted quota) raises, from the OS or from SQLite."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(e).lower()
    return False


@dataclass(frozen=True)
class RotationPolicy:
    rotate_bytes: int = 10 * 1024 * 1024
    max_total_bytes: int = 100 * 1024 * 1024
    keep: int = 10  # rotated files kept besides the live one


def _stamp_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.stem) + r"\.\d{8}T\d{6}\.\d{6}" + re.escape(path.suffix) + "$")


def rotated_files(path: Path) -> list[Path]:
    """Rotated siblings of the live file, oldest first (the time stamp in the name sorts)."""
    if not path.parent.is_dir():
        return []
    pattern = _stamp_pattern(path)
    return sorted(p for p in path.parent.iterdir() if pattern.match(p.name))


def rotate(path: Path) -> Path:
    """Rename the live file aside under a time-stamped name; returns the new name."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f".{int((now % 1) * 1e6):06d}"
    target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    while target.exists():  # two rotations within a microsecond: step the stamp on
        now += 1e-6
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f".{int((now % 1) * 1e6):06d}"
        target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    os.replace(path, target)
    return target


def enforce_caps(path: Path, policy: RotationPolicy) -> list[Path]:
    """Delete the oldest rotated files until the count and total-size caps hold; returns what went."""
    old = rotated_files(path)
    sizes = {p: p.stat().st_size for p in old}
    live = path.stat().st_size if path.exists() else 0
    total = live + sum(sizes.values())
    removed = []
    while old and (len(old) > policy.keep or total > policy.max_total_bytes):
        victim = old.pop(0)
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()
        total -= sizes[victim]
        removed.append(victim)
    if removed:
        log.info("records: removed %d old file(s) to keep %s within its caps", len(removed), path.name)
    return removed


class Recorder(ABC):
    """One record destination. write() raises OSError (or the store's own error) when it cannot write;
    the RecordSink counts and logs that and inference goes on. Subclasses implement _open/_close/_size
    and write; rotation is shared."""

    name: str = ""

    def __init__(self, path: str | Path, policy: RotationPolicy | None = None):
        self.path = Path(path)
        self.policy = policy or RotationPolicy()
        self.written = 0
        self.rotations = 0
        self.is_open = False
        self.closed = False
        self._retry_at = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except Exception as e:
            # A full disk is not a reason to stop watching: start without the file and retry later.
            # Anything else (no permission, a read-only file system) is a setup mistake and fails the start.
            if not disk_full(e):
                raise
            self._close()
            self._retry_at = time.monotonic() + REOPEN_EVERY_S
            log.error("records: cannot create %s, the disk is full (%s); retrying every %.0f s",
                      self.path, e, REOPEN_EVERY_S)

    def _start(self) -> None:
        self._open()
        self.is_open = True
        # A restart finds the previous run's files: hold the caps from the start, not after the next rotation.
        if not self.maybe_rotate():
            enforce_caps(self.path, self.policy)

    def ensure_open(self) -> None:
        """Subclasses call it first in write(): re-tries a live file that could not be opened (disk full),
        at most every REOPEN_EVERY_S, and raises while it still cannot be."""
        if self.is_open:
            return
        if self.closed:
            raise OSError(errno.EBADF, "recorder is closed", str(self.path))
        now = time.monotonic()
        if now < self._retry_at:
            raise OSError(errno.ENOSPC, "records file not open (the disk was full); retrying soon", str(self.path))
        self._retry_at = now + REOPEN_EVERY_S
        try:
            self._start()
        except Exception:
            self.is_open = False
            self._close()
            raise

    @abstractmethod
    def write(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Make everything written so far reach the file (called on a timer and at shutdown)."""
        return None

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._close()
            self.is_open = False
            self.closed = True

    @abstractmethod
    def _open(self) -> None:
        """Open (or create) the live file at self.path."""

    @abstractmethod
    def _close(self) -> None:
        """Release the live file; safe to call twice."""

    @abstractmethod
    def _size(self) -> int:
        """Bytes the live file holds now."""

    def maybe_rotate(self) -> bool:
        """Rotate when the live file reached rotate_bytes; subclasses call it after each write."""
        if self._size() < self.policy.rotate_bytes:
            return False
        self.flush()
        self._close()  # closed before the rename: SQLite names its journal after the path
        self.is_open = False
        rotate(self.path)
        self.rotations += 1
        self._open()  # on failure (disk full) the next write retries through ensure_open()
        self.is_open = True
        enforce_caps(self.path, self.policy)
        return True
