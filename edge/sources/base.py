"""Camera sources: one plug-in per file, each a Source; Capture runs one on its own thread.

A Source only knows how to open, read one frame and close. Everything about staying alive (reconnect
with backoff, counting drops and corrupt frames, latest-frame hand-over) lives in Capture, once.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import ConfigDict

from edge.strict import Strict


class SourceError(Exception):
    """The source cannot deliver right now (unplugged, stream cut, end of file): Capture reconnects."""


class EndOfStream(SourceError):
    """A finite source (non-looping file or image folder) has delivered everything: Capture finishes."""


class CorruptFrame(Exception):
    """One frame could not be decoded but the source is still alive: Capture counts it and reads on."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 (H, W, 3)
    index: int  # frames delivered by the source so far, from 0
    timestamp: float  # time.monotonic() at capture


@dataclass
class CaptureStats:
    captured: int = 0  # frames read from the source
    dropped: int = 0  # frames overwritten before the consumer took them (latest-frame semantics)
    corrupt: int = 0  # frames rejected as undecodable or malformed
    reconnects: int = 0  # successful re-opens after a failure
    disconnects: int = 0  # times a working source failed (unplugged, stream cut, read timeout)


class SourceConfigBase(Strict):
    """Common base of every plug-in's config: unknown keys are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(frozen=True)  # and Strict's extra="forbid"
    type: str


class Source(ABC):
    """One camera or stream. Implementations raise SourceError from open()/read() on failure.

    Subclasses set `name` and `Config` (their pydantic model, with `type: Literal[name]`) and take that
    config in __init__. open/read/close are only ever called from the capture thread; interrupt() may be
    called from any thread."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[SourceConfigBase]] = SourceConfigBase

    def __init__(self, cfg: Any):
        self.cfg = cfg
        # Set by interrupt(): plug-ins that pace themselves wait on it so stop() is never held up.
        self._wake = threading.Event()
        self._next_due = 0.0  # pace(): when the next frame is due; 0 = start the schedule now

    @property
    def live(self) -> bool:
        """True when frames come at the world's pace (a camera, a stream, a file paced in realtime):
        then a slow consumer must skip frames. False for a file read as fast as it decodes: Capture then
        waits for the consumer by default, as dropping such frames only burns CPU on decoding."""
        return True

    @classmethod
    def unavailable(cls) -> str | None:
        """None when usable on this machine, else why not (e.g. 'not installed (...)')."""
        return None

    def check(self) -> None:
        """Static checks before anything runs (file exists, folder not empty): CctvkitError on bad input.

        Runtime problems (camera gone, stream down) are SourceError from open()/read() instead, so the
        daemon retries those and refuses to start on these."""
        return None

    def describe(self) -> str:
        """A short text for logs, without secrets (stream passwords are masked)."""
        return self.name

    def interrupt(self) -> None:
        """Wake the source from a pacing sleep; Capture.stop() calls it from another thread."""
        self._wake.set()

    def reset_interrupt(self) -> None:
        """Capture.start() calls it so a source can be run again after a stop()."""
        self._wake.clear()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless interrupted; True when interrupted."""
        return self._wake.wait(max(0.0, seconds))

    def pace(self, period: float) -> None:
        """Hold the caller until the next frame is due, `period` seconds after the previous one.

        Never bursts to catch up: more than a frame behind (slow decoder), the schedule restarts from
        now, as a camera would. reset_pace() (on open) starts a new schedule."""
        now = time.monotonic()
        if self._next_due <= 0.0:
            self._next_due = now
        if now < self._next_due:
            self.sleep(self._next_due - now)
        elif now - self._next_due > period:
            self._next_due = now
        self._next_due += period

    def reset_pace(self) -> None:
        self._next_due = 0.0

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray:
        """The next BGR frame; CorruptFrame for one bad frame, SourceError when the source failed,
        EndOfStream when a finite source is done."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call when not open or already closed."""
