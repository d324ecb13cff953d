"""Several inference workers, each with a model instance of its own, fed from one Capture.

On a small CPU one ONNX Runtime session with 2 intra-op threads leaves cores idle between operators
(small layers, thread hand-offs); two sessions with 1 thread each, run from two Python threads (the
runtime releases the GIL while it computes), keep both cores busy and get more frames through. Frigate
offers the same as several CPU detector instances. The cost is latency: each frame runs on fewer threads.

pool = WorkerPool(models, infer, capture, gate)   # models loaded and warmed up by the caller
pool.start()
result = pool.get(timeout=0.25)   # a Result, or None; raises WorkerError once a worker has failed
pool.alive_since()                # oldest proof of life of the workers: what the watchdog relies on
pool.request_stop(); pool.join(1.0); pool.drain()

Each worker takes the newest frame nobody has taken yet from Capture.latest() (latest-frame semantics
stay: no queue of stale frames in front of the models) and hands its Result to the consumer through a
queue bounded at one slot per worker. Taking a frame and asking the motion gate about it happen under one
lock, so the gate (stateful: it compares each frame with its reference thumbnail) sees frames one at a
time in capture order. Results can still come back out of frame order (a slower inference on one worker);
Result.index lets the consumer tell (see Daemon._apply).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from edge.detector import Timing
from edge.motion import MotionGate
from edge.records import Event
from edge.sources import Capture, Frame

log = logging.getLogger(__name__)

# How long a worker waits in one call (for the take lock, a frame or room in the queue) before it looks at
# the stop flag again and renews its heartbeat. Bounds the stop latency of an idle worker.
POLL_S = 0.25


class Timed(Protocol):
    """A model that records the pre/infer/post split of its last call (Detector, Classifier)."""

    timing: Timing


M = TypeVar("M", bound=Timed)

# infer(model, image, frame_index) -> (persons, detection event or None); runs on a worker thread and
# must only touch its own model.
InferFn = Callable[[M, np.ndarray, int], tuple[int, Event | None]]


@dataclass
class Result:
    """What one frame came to. `inferred` False: the motion gate kept it from the model."""

    index: int  # the Capture's frame number: grows in capture order
    taken: float  # time.monotonic() when the frame was taken from the capture
    inferred: bool
    count: int = 0
    event: Event | None = None
    timing: Timing = field(default_factory=Timing)
    gate_seconds: float = 0.0  # time spent in the motion gate on this frame
    worker: int = 0
    done: float = 0.0  # time.monotonic() when the result was ready


class WorkerError(RuntimeError):
    """A worker raised: the pool cannot keep its promised throughput, the daemon must exit non-zero."""


class WorkerPool(Generic[M]):
    def __init__(
        self,
        models: Sequence[M],
        infer: InferFn[M],
        capture: Capture,
        gate: MotionGate | None = None,
        *,
        queue_size: int | None = None,
    ):
        if not models:
            raise ValueError("a worker pool needs at least one model")
        self.models = list(models)
        self.infer = infer
        self.capture = capture
        self.gate = gate
        n = len(self.models)
        # Bounded: a consumer that stalls (a wedged disk) stops the workers instead of growing a backlog.
        self._results: queue.Queue[Result] = queue.Queue(maxsize=queue_size or n)
        self._take_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Per worker: time.monotonic() of its last proof of life; +inf once it has ended normally.
        # One float per slot, written by its worker only (a list item store is atomic under the GIL).
        self._beat = [time.monotonic()] * n
        self.processed = [0] * n  # frames each worker ran through its model
        self._error: tuple[int, BaseException, str] | None = None
        self._error_lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.models)

    def start(self) -> WorkerPool[M]:
        if self._threads:
            raise RuntimeError("WorkerPool.start() called twice")
        now = time.monotonic()
        for i in range(self.size):
            self._beat[i] = now
            t = threading.Thread(target=self._run, args=(i,), name=f"infer-{i}", daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    # ---- consumer side ------------------------------------------------------------------------------

    def get(self, timeout: float) -> Result | None:
        """The next result, waiting up to `timeout` s; None when there is none by then.
        Raises WorkerError once any worker has failed (its traceback is logged by the worker)."""
        self._raise_if_failed()
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            self._raise_if_failed()
            return None

    def drain(self) -> list[Result]:
        """The results waiting in the queue now (after join(): everything the workers finished)."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    @property
    def done(self) -> bool:
        """Every worker ended normally (the capture finished: a non-looping file) and nothing is queued."""
        return (bool(self._threads) and self._error is None and not any(t.is_alive() for t in self._threads)
                and self._results.empty())

    def alive_since(self) -> float:
        """time.monotonic() of the oldest heartbeat among the running workers. A worker beats each time it
        comes back from waiting (for a frame, the take lock or room in the queue; at most POLL_S apart)
        and after every inference, so an idle source keeps this fresh while a worker stuck inside its
        runtime lets it age: the watchdog and /healthz read it."""
        oldest = min(self._beat)
        return time.monotonic() if math.isinf(oldest) else oldest

    def request_stop(self) -> None:
        """Tell the workers to stop after their current frame (does not wait)."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Stop and wait for every worker, at most `timeout` s in all; True when all have ended. A worker
        stuck in a runtime call is left behind (daemon thread: it does not keep the process alive)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            i, e, _ = self._error
            raise WorkerError(f"inference worker {i + 1} of {self.size} failed: "
                              f"{type(e).__name__}: {e}".replace("\n", " ")) from e

    # ---- worker threads -----------------------------------------------------------------------------

    def _take(self) -> tuple[Frame, float, bool, float] | None:
        """(frame, taken at, run the model?, gate seconds) for the newest untaken frame, or None."""
        if not self._take_lock.acquire(timeout=POLL_S):
            return None
        try:
            frame = self.capture.latest(timeout=POLL_S)
            if frame is None:
                return None
            taken = time.monotonic()
            if self.gate is None:
                return frame, taken, True, 0.0
            before = self.gate.stats.check_seconds
            go = self.gate.should_infer(frame.image, taken)
            return frame, taken, go, self.gate.stats.check_seconds - before
        finally:
            self._take_lock.release()

    def _run(self, i: int) -> None:
        model = self.models[i]
        try:
            while not self._stop.is_set():
                self._beat[i] = time.monotonic()
                got = self._take()
                if got is None:
                    if self.capture.finished:
                        break  # a finite source delivered everything: this worker is done
                    continue
                frame, taken, go, gate_s = got
                result = Result(frame.index, taken, go, gate_seconds=gate_s, worker=i)
                if go:
                    result.count, result.event = self.infer(model, frame.image, frame.index)
                    result.timing = model.timing
                    self.processed[i] += 1
                result.done = time.monotonic()
                self._put(i, result)
        except BaseException as e:
            tb = traceback.format_exc()
            with self._error_lock:
                if self._error is None:
                    self._error = (i, e, tb)
            log.error("inference worker %d of %d failed:\n%s", i + 1, self.size, tb.rstrip())
            self._stop.set()  # the others stop too: the daemon is going down
            return
        self._beat[i] = math.inf  # ended normally: no longer a worker the watchdog waits for

    def _put(self, i: int, result: Result) -> None:
        while not self._stop.is_set():
            self._beat[i] = time.monotonic()
            try:
                self._results.put(result, timeout=POLL_S)
                return
            except queue.Full:
                continue
        # Stopping: keep the result if there is room, so records get what was already computed.
        with contextlib.suppress(queue.Full):
            self._results.put_nowait(result)


__all__ = ["POLL_S", "InferFn", "Result", "Timed", "WorkerError", "WorkerPool"]
