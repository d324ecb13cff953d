"""JSON Lines records: one event per line, appended with a single unbuffered write.

Each line reaches the kernel as soon as it is recorded, so SIGTERM or a crash loses nothing already
written. A write that fails half-way (disk full) is cut back off, so the file never holds a broken line;
a file torn by a power cut (its last line without a newline) is cut back to its last whole line on open,
so the next event starts a line of its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os

from edge.records.base import Recorder
from edge.records.events import Event

log = logging.getLogger(__name__)
TAIL_CHUNK = 64 * 1024  # read back this much at a time to find the last newline


def _last_whole_line_end(fd: int, size: int) -> int:
    """The offset just after the file's last newline (0 when it has none)."""
    end = size
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


class JsonlRecorder(Recorder):
    name = "jsonl"

    _fd: int | None = None
    _bytes = 0
    torn_bytes = 0  # bytes of a torn last line cut off on open

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._bytes = os.fstat(self._fd).st_size
        if self._bytes and os.pread(self._fd, 1, self._bytes - 1) != b"\n":
            keep = _last_whole_line_end(self._fd, self._bytes)
            os.ftruncate(self._fd, keep)
            self.torn_bytes += self._bytes - keep
            log.warning("%s: cut off a torn last line (%d bytes) left by a crash or power loss",
                        self.path, self._bytes - keep)
            self._bytes = keep

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _size(self) -> int:
        return self._bytes

    def write(self, event: Event) -> None:
        self.ensure_open()
        assert self._fd is not None
        data = (json.dumps(event.to_dict(), separators=(",", ":")) + "\n").encode()
        try:
            n = os.write(self._fd, data)
            if n != len(data):  # short write: the file system ran out of room part-way
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._bytes)
            raise
        self._bytes += n
        self.written += 1
        self.maybe_rotate()

    def flush(self) -> None:
        # Lines go straight to the kernel in write(); nothing is buffered here. No fsync: an SD card
        # wears out under one per event, and the page cache survives a daemon crash.
        return None
