"""JSON Lines records: one event per line, appended with a single unbuffered write.

Each line reaches the kernel as soon as it is recorded, so SIGTERM or a crash loses nothing already
written. A write that fails half-way (disk full) is cut back off, so the file never holds a broken line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os

from edge.records.base import Recorder
from edge.records.events import Event


class JsonlRecorder(Recorder):
    name = "jsonl"

    _fd: int | None = None
    _bytes = 0

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._bytes = os.fstat(self._fd).st_size

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
