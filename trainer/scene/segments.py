"""Scene segments: where a long sequence's empty scene changes (cars parked or moved, day and night, a
thermal camera's drift over months), so each stretch gets its own background plate.

One median over a changing scene is no stretch's background: the person finder would then call the
parked car, or the whole night, foreground. The cuts are found on small blurred grey thumbnails spread
over the training part only: at each candidate cut, the per-pixel median of a window of thumbnails
before is compared with the median of a window after. The temporal median drops people walking through
(each is in one place for a minority of a window), a global gain (the camera's auto exposure, a thermal
camera's auto gain; the person finder corrects it too) is divided out, and the score is the share of
pixels that still differ. Cuts are taken strongest first, each at least segment_min_frames from the
others and from the ends, and neighbours whose whole-segment medians turn out alike are merged again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.sampling import spread_indices
from trainer.scene.frames import iter_frames
from trainer.scene.params import SceneParams
from trainer.scene.progress import task_progress

THUMB_W = 80  # thumbnail width: a scene change spans many such pixels, a person only a few
BLUR_SIGMA = 1.0  # in thumbnail pixels: JPEG noise and a one-pixel camera wobble are not a change
GAIN_LIMITS = (0.4, 2.5)  # as the person finder's global gain correction (trainer/scene/foreground.py)


@dataclass(frozen=True)
class Segment:
    start: int  # first frame of the segment
    stop: int  # one past its last frame

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, index: object) -> bool:
        return isinstance(index, (int, np.integer)) and self.start <= index < self.stop


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """(h, THUMB_W) float32 grey, blurred."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h = max(1, round(THUMB_W * grey.shape[0] / grey.shape[1]))
    small = cv2.resize(grey, (THUMB_W, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), BLUR_SIGMA)


def _gain_matched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a divided by its global gain against b (the median ratio: most pixels are background)."""
    gain = float(np.median((a + 3.0) / (b + 3.0)))
    return a / min(max(gain, GAIN_LIMITS[0]), GAIN_LIMITS[1])


def change_share(a: np.ndarray, b: np.ndarray, pixel_threshold: float) -> float:
    """Share of thumbnail pixels that differ by more than pixel_threshold after gain matching."""
    return float(np.mean(np.abs(_gain_matched(a, b) - b) > pixel_threshold))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Median absolute difference after gain matching: how well plate b fits frame a (people are a
    minority of the pixels, so they barely move the median)."""
    return float(np.median(np.abs(_gain_matched(a, b) - b)))


def _median(stack: np.ndarray) -> np.ndarray:
    return np.median(stack, axis=0).astype(np.float32)


def find_cuts(thumbs: np.ndarray, positions: list[int], train: range, params: SceneParams) -> list[int]:
    """Frame indices where a new segment starts (sorted), from thumbnails taken at `positions`."""
    w, n = params.segment_window, len(thumbs)
    if not params.segments or n < 2 * w or params.max_segments < 2:
        return []
    scores = np.zeros(n, np.float64)
    for j in range(w, n - w + 1):
        scores[j] = change_share(_median(thumbs[j : j + w]), _median(thumbs[j - w : j]),
                                 params.segment_pixel_threshold)
    cuts: list[int] = []
    min_len = params.segment_min_frames
    for j in np.argsort(-scores, kind="stable"):
        if scores[j] < params.segment_change or len(cuts) >= params.max_segments - 1:
            break
        c = positions[int(j)]
        if c - train.start < min_len or train.stop - c < min_len or any(abs(c - o) < min_len for o in cuts):
            continue
        cuts.append(c)
    return _merge_alike(sorted(cuts), thumbs, positions, train, params)


def _merge_alike(cuts: list[int], thumbs: np.ndarray, positions: list[int], train: range,
                 params: SceneParams) -> list[int]:
    """Drop the cut between the two most alike neighbouring segments while they are alike: a window
    comparison sees a local disturbance (a boat moored for a while, a crowd standing); whole segments
    that share one empty scene need no second plate."""
    pos = np.asarray(positions)
    while cuts:
        bounds = [train.start, *cuts, train.stop]
        medians = [_median(thumbs[(pos >= a) & (pos < b)]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        shares = [change_share(medians[k + 1], medians[k], params.segment_pixel_threshold)
                  for k in range(len(cuts))]
        k = int(np.argmin(shares))
        if shares[k] >= params.segment_change:
            break
        cuts = cuts[:k] + cuts[k + 1 :]
    return cuts


def find_segments(video: str | Path, train: range, params: SceneParams,
                  progress: bool = True) -> list[Segment]:
    """Scene segments covering the training part exactly, in order. Only training frames are read."""
    idx = spread_indices(train.start, train.stop, params.segment_samples) if params.segments else []
    thumbs: list[np.ndarray] = []
    positions: list[int] = []
    if len(idx) >= 2 * params.segment_window:
        with task_progress("scene changes", len(idx), progress) as advance:
            for i, frame in iter_frames(video, idx):
                thumbs.append(thumbnail(frame))
                positions.append(i)
                advance()
    cuts = find_cuts(np.stack(thumbs), positions, train, params) if thumbs else []
    bounds = [train.start, *cuts, train.stop]
    return [Segment(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def segment_of(segments: list[Segment], index: int) -> int:
    """The segment holding a training frame."""
    for k, seg in enumerate(segments):
        if index in seg:
            return k
    raise ValueError(f"frame {index} is in no training segment")


def closest_plate(frame: np.ndarray, plate_thumbs: list[np.ndarray]) -> int:
    """The plate that fits a (held-out) frame best: smallest gain-matched median absolute difference."""
    t = thumbnail(frame)
    return int(np.argmin([difference(t, p) for p in plate_thumbs]))
