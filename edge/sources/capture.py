"""Run a Source on its own thread and hand the consumer only the newest frame.

Latest-frame semantics: one slot, guarded by a Condition. A new frame replaces one the consumer has not
taken yet (counted in `dropped`), so inference never works through a backlog of stale frames and memory
stays at one frame whatever the speeds. lossless=True makes the capture thread wait for the consumer
instead (still one slot): every frame of a file is processed. The default (None) is lossless exactly for
sources that are not live (a file not paced in realtime, an image folder without fps), whose dropped
frames would only be decoding work thrown away; a camera or stream is never waited for.

Faults never end the thread: a failed open or read closes the source and retries after an exponential
backoff (capped, with jitter so a fleet of cameras does not hammer a recovering server in step), which
starts again from backoff_initial once the source has been healthy for `healthy_after` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edge.sources.base import CaptureStats, CorruptFrame, EndOfStream, Frame, Source

log = logging.getLogger(__name__)

# on_event(event, detail). Events: "connected" (first open), "open_failed" (an open attempt failed; detail
# says when it retries), "disconnected" (a working source failed), "reconnected" (open after a
# disconnect), "finished" (a finite source ended). Called from the capture thread: keep it quick.
EventCallback = Callable[[str, str], None]

EVENTS = ("connected", "open_failed", "disconnected", "reconnected", "finished")


def valid_image(image: object) -> bool:
    """A BGR uint8 (H, W, 3) array with H, W > 0: what edge/detect accepts."""
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    )


class Capture:
    def __init__(
        self,
        source: Source,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        jitter: float = 0.2,
        healthy_after: float = 10.0,
        max_corrupt_in_a_row: int = 100,
        lossless: bool | None = None,
        on_event: EventCallback | None = None,
    ):
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self.source = source
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.healthy_after = healthy_after
        self.max_corrupt_in_a_row = max_corrupt_in_a_row
        self.lossless = (not source.live) if lossless is None else lossless
        self.on_event = on_event
        self._cond = threading.Condition()  # guards everything below
        self._slot: Frame | None = None
        self._stats = CaptureStats()
        self._connected = False
        self._ended = False  # the thread has exited (finished, or stopped)
        self._finished = False  # a finite source delivered everything
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- consumer side ------------------------------------------------------------------------------

    def start(self) -> Capture:
        if self._thread is not None:
            raise RuntimeError("Capture.start() called twice")
        self.source.reset_interrupt()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread and close the source; True when the thread ended within `timeout` seconds.

        A thread stuck in a driver call past the timeout is left behind (daemon thread: it does not keep
        the process alive); the source is never closed from under a read that is still running."""
        self._stop.set()
        self.source.interrupt()
        with self._cond:
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def latest(self, timeout: float) -> Frame | None:
        """The newest frame not taken yet, waiting up to `timeout` s; None when there is none by then,
        at once when the capture has ended (see `finished`) or is stopping."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._slot is None and not self._ended and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
            if self.lossless:
                self._cond.notify_all()  # the capture thread may be waiting for the slot
            return frame

    @property
    def stats(self) -> CaptureStats:
        """A consistent copy of the counters."""
        with self._cond:
            return replace(self._stats)

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def finished(self) -> bool:
        """A finite source ended and its last frame has been taken: the consumer is done."""
        with self._cond:
            return self._finished and self._slot is None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- capture thread -----------------------------------------------------------------------------

    def _emit(self, event: str, detail: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, detail)
        except Exception:  # a logging bug must not kill the camera thread
            log.exception("capture on_event callback failed for %s", event)

    def backoff_delay(self, failures: int) -> float:
        """Seconds to wait after the n-th failure in a row (n >= 1): doubling, capped, minus jitter."""
        base = min(self.backoff_max, self.backoff_initial * 2 ** min(max(failures - 1, 0), 30))
        return base * (1.0 - self.jitter * random.random())

    def _set_connected(self, value: bool) -> None:
        with self._cond:
            self._connected = value

    def _run(self) -> None:
        failures = 0  # failures since the source was last healthy: drives the backoff
        lost = False  # a working connection failed: the next successful open is a reconnect
        connected_at = 0.0
        corrupt_in_a_row = 0
        try:
            while not self._stop.is_set():
                if not self._connected:
                    try:
                        self.source.open()
                    except Exception as e:  # SourceError, or a driver's own exception: retry all the same
                        self._close_source()
                        failures += 1
                        delay = self.backoff_delay(failures)
                        self.last_error = _text(e)
                        self._emit("open_failed", f"{self.last_error}; retrying in {delay:.1f} s")
                        self._stop.wait(delay)
                        continue
                    connected_at = time.monotonic()
                    corrupt_in_a_row = 0
                    with self._cond:
                        self._connected = True
                        if lost:
                            self._stats.reconnects += 1
                    self._emit("reconnected" if lost else "connected", self._describe())
                    lost = False

                try:
                    image = self.source.read()
                    if not valid_image(image):
                        raise CorruptFrame(f"malformed frame {_shape(image)}; expected uint8 (H, W, 3)")
                except CorruptFrame as e:
                    with self._cond:
                        self._stats.corrupt += 1
                    corrupt_in_a_row += 1
                    if corrupt_in_a_row < self.max_corrupt_in_a_row:
                        continue
                    failure: Exception = e  # nothing but corrupt frames: treat it as a dead source
                except EndOfStream as e:
                    with self._cond:
                        self._finished = True
                    self._emit("finished", _text(e))
                    return
                except Exception as e:
                    failure = e
                else:
                    if self._stop.is_set():
                        return  # read cut short by stop(): not a frame anybody should still get
                    corrupt_in_a_row = 0
                    now = time.monotonic()
                    if failures and now - connected_at >= self.healthy_after:
                        failures = 0
                    self._publish(image, now)
                    continue

                # The source failed: close it, count, wait, and go round to re-open.
                if self._stop.is_set():
                    return  # failed because we are shutting down: not a disconnect to report
                self._close_source()
                self._set_connected(False)
                lost = True
                failures += 1
                delay = self.backoff_delay(failures)
                self.last_error = _text(failure)
                with self._cond:
                    self._stats.disconnects += 1
                self._emit("disconnected", f"{self.last_error}; retrying in {delay:.1f} s")
                self._stop.wait(delay)
        finally:
            self._close_source()
            with self._cond:
                self._connected = False
                self._ended = True
                self._cond.notify_all()

    def _publish(self, image: np.ndarray, timestamp: float) -> None:
        with self._cond:
            if self.lossless:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.5)
            if self._slot is not None:
                self._stats.dropped += 1
            self._slot = Frame(image=image, index=self._stats.captured, timestamp=timestamp)
            self._stats.captured += 1
            self._cond.notify_all()

    def _describe(self) -> str:
        try:
            return self.source.describe()
        except Exception:  # a text for a log line is never worth the camera thread
            return self.source.name

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:  # closing a dead device can raise; there is nothing more to release
            log.debug("closing %s failed", self.source.name, exc_info=True)


def _text(e: BaseException) -> str:
    return (str(e) or type(e).__name__).replace("\n", " ")


def _shape(image: object) -> str:
    if isinstance(image, np.ndarray):
        return f"{image.dtype} {image.shape}"
    return type(image).__name__
