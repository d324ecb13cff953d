"""Motion gate: skip inference while nothing in the picture moves.

Frame differencing on a small blurred grey thumbnail (64 px wide by default: ~0.1 ms on a Pi 5, against
tens of ms for one inference). The reference thumbnail only moves on when motion was seen or a forced
re-check ran, so slow movement accumulates until it crosses the threshold instead of hiding between
two similar consecutive frames. A person who stops moving is re-checked every `max_skip_s` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class MotionStats:
    checks: int = 0  # thumbnails compared
    moving: int = 0  # checks that saw motion
    forced: int = 0  # inferences run only because max_skip_s had passed
    skipped: int = 0  # frames whose inference was skipped
    check_seconds: float = 0.0  # time spent in the gate itself


class MotionGate:
    def __init__(
        self,
        threshold: int = 25,
        min_area: float = 0.002,
        every: int = 1,
        max_skip_s: float = 5.0,
        width: int = 64,
    ):
        """threshold: grey-level change (0-255) that counts a thumbnail pixel as changed; min_area: fraction
        of thumbnail pixels that must change to call it motion; every: compare only every N-th frame (the
        frames between follow the last verdict); max_skip_s: run inference at least this often anyway."""
        if not (0 < threshold < 256 and 0.0 <= min_area <= 1.0 and every >= 1 and max_skip_s >= 0 and width >= 8):
            raise ValueError("motion gate: threshold 1-255, min_area 0-1, every >= 1, max_skip_s >= 0, width >= 8")
        self.threshold = threshold
        self.min_area = min_area
        self.every = every
        self.max_skip_s = max_skip_s
        self.width = width
        self.stats = MotionStats()
        self._ref: np.ndarray | None = None
        self._frames = 0
        self._last_verdict = True
        self._last_run = float("-inf")
        self.last_fraction = 0.0  # changed-pixel fraction of the last check, for logs and tuning

    def thumbnail(self, frame_bgr: np.ndarray) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        size = (self.width, max(1, round(h * self.width / w)))
        small = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)  # area averaging damps sensor noise
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0)

    def _moving(self, thumb: np.ndarray) -> bool:
        self.stats.checks += 1
        if self._ref is None or self._ref.shape != thumb.shape:
            self._ref = thumb
            return True  # nothing to compare with yet: look at the first frame
        diff = cv2.absdiff(thumb, self._ref)
        self.last_fraction = float(np.count_nonzero(diff > self.threshold)) / diff.size
        moving = self.last_fraction >= self.min_area
        if moving:
            self._ref = thumb
            self.stats.moving += 1
        return moving

    def should_infer(self, frame_bgr: np.ndarray, now: float | None = None) -> bool:
        """True when this frame should go to the model; `now` is time.monotonic()."""
        now = time.monotonic() if now is None else now
        t0 = time.perf_counter()
        thumb = None
        if self._frames % self.every == 0:
            thumb = self.thumbnail(frame_bgr)
            self._last_verdict = self._moving(thumb)
        self._frames += 1
        run = self._last_verdict
        if not run and now - self._last_run >= self.max_skip_s:
            run = True
            self.stats.forced += 1
            if thumb is not None:
                self._ref = thumb  # re-anchor: slow light changes should not fire forever
        if run:
            self._last_run = now
        else:
            self.stats.skipped += 1
        self.stats.check_seconds += time.perf_counter() - t0
        return run
