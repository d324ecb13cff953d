"""Background plate: per pixel, the empty scene's value from frames spread over a scene segment.

Where people pass by, they cover a pixel in a minority of the sampled frames and the plain temporal
median is the empty scene. Where the scene never clears (a concourse with 30-50 people in view at any
time) the median of a pixel that people cover most of the time is a blend of clothes: the plate keeps
ghosted people, the foreground against it is wrong and everything after it learns from ghosts. So the
"clean" plate (`scene.plate: clean`) is built from the pixels without people:

1. Moving pixels are left out: each sampled frame is compared with one a moment later (`gap` frames);
   what changed by more than the pixel's own flicker at that time scale, joined and filled into the
   moving bodies, is not a sample of the empty scene there.
2. Of what is left, the median (where nothing moved, exactly the plain median).
3. Pixels seen without movement in fewer than a few samples are filled from their surroundings
   (inpainting), and their share is kept: the scene's self-check reports it as ghosting the plate could
   not remove. People who stand still are not movement: they stay in the plate, and the self-check's
   whole-person detections on the plate catch them.

Measured (benchmarks/crowd_scene.py, 45 real people walking over vtest's square, 36 visible per frame):
the plate's error where people covered a pixel in most frames, median 9 -> 3 grey levels, 90th
percentile 34 -> 15. On the thermal harbour's real labels (label-free, 4 epochs, same commit) it scored
0.241 / 0.071 mAP50 / mAP50-95 against the median's 0.251 / 0.076, so "median" stays the default.
Tried and dropped: the mode of each pixel's history where its median looks like a blend (it rewrote
12-24% of the thermal camera's plates, whose pixels wander over 20+ grey levels, and the finder then saw
48 "people" per frame instead of 3), and motion thresholds from the spread around the median (a crowd
inflates that spread, so the crowd stopped counting as movement).

"median" (the default) is the plain temporal median everywhere.
The per-pixel spread around the plain median (median absolute deviation of every sample) is kept too: it
tells the person finder where the background itself flickers (foliage, compression noise on texture) so
thresholds can rise there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.scene.frames import iter_frames
from trainer.scene.progress import task_progress

METHODS = ("clean", "median")
# Frame-to-frame change (max channel, after matching exposure) that counts as movement: at least this,
# and at least MOTION_K times the pixel's own flicker between the frames of a pair (_pair_flicker).
MOTION_LEVELS = 25
MOTION_K = 3.0
# A pixel needs this many samples without movement to be called seen empty.
MIN_STILL = 4
# A frame pair changed over more than this share: a cut or an exposure jump, not people; no mask.
MAX_MOVING_SHARE = 0.6


@dataclass(frozen=True)
class Plate:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    noise: np.ndarray  # (H, W) float32, per-pixel MAD of the max channel deviation, smoothed
    n_frames: int
    # Share of pixels never seen without movement (filled in from around them): 0 where the scene clears.
    unseen: float = 0.0


def _lower_median(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median that stays in uint8 (the lower middle element): np.median would allocate float64
    copies of the whole stack, ~8x the memory for no visible gain."""
    k = (stack.shape[axis] - 1) // 2
    return np.partition(stack, k, axis=axis).take(k, axis=axis)


def _masked_lower_median(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Lower median over axis 0 of the kept samples only (every pixel keeps at least one)."""
    v = np.where(keep, values.astype(np.uint16), np.uint16(1024))  # dropped samples sort last
    v.sort(axis=0)
    k = ((keep.sum(axis=0) - 1) // 2)[None]
    return np.take_along_axis(v, k, axis=0)[0].astype(np.uint8)


def motion_mask(frame: np.ndarray, later: np.ndarray, threshold: np.ndarray | float = MOTION_LEVELS
                ) -> np.ndarray | None:
    """Pixels that changed between a frame and one a moment later by more than `threshold` (per pixel:
    the background's own flicker raises it), joined and filled into the moving bodies; None when nearly
    everything changed (a cut). A wide, evenly coloured coat moving slowly changes only at its edges
    and keeps its middle."""
    a = frame.astype(np.float32)
    b = later.astype(np.float32)
    gain = float(np.median((a[::4, ::4].sum(axis=-1) + 3.0) / (b[::4, ::4].sum(axis=-1) + 3.0)))
    moved = (np.abs(a - b * gain).max(axis=-1) > threshold).astype(np.uint8) * 255
    if moved.mean() / 255.0 > MAX_MOVING_SHARE:
        return None
    s = max(1.0, frame.shape[0] / 576.0)  # kernels sized for 576 rows, people scale with the frame
    ellipse = lambda w, h: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(w * s) | 1, int(h * s) | 1))  # noqa: E731
    moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    moved = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, ellipse(9, 21))
    contours, _ = cv2.findContours(moved, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(moved, contours, -1, 255, thickness=cv2.FILLED)
    return cv2.dilate(moved, ellipse(7, 7)) > 0


def _pair_flicker(frames: list[np.ndarray], later: list[np.ndarray | None]) -> np.ndarray:
    """Per pixel, the median change between a frame and its partner a moment later: the background's
    own flicker at that time scale (sensor noise, water, a thermal camera's gain steps). Unlike the
    spread around the median it stays low where a crowd covers the pixel in most frames, since the same
    person mostly covers it in both frames of a pair."""
    pairs = [(f, g) for f, g in zip(frames, later, strict=True) if g is not None]
    if not pairs:
        return np.zeros(frames[0].shape[:2], np.float32)
    diffs = np.stack([np.abs(f.astype(np.int16) - g.astype(np.int16)).max(axis=-1).astype(np.uint8) for f, g in pairs])
    return _lower_median(diffs).astype(np.float32)


def median_plate(frames: list[np.ndarray], rows_per_chunk: int = 64, method: str = "median",
                 later: list[np.ndarray | None] | None = None) -> Plate:
    """Plate and noise map from same-sized BGR frames. later: for the clean plate, each frame's partner
    a moment later (None: no partner, nothing left out of that frame)."""
    if not frames:
        raise ValueError("median_plate needs at least one frame")
    if method not in METHODS:
        raise ValueError(f"plate method {method!r}: valid are {', '.join(METHODS)}")
    stack = np.stack(frames)  # (N, H, W, 3) uint8
    n, h, w, _ = stack.shape
    plate = np.empty((h, w, 3), np.uint8)
    noise = np.empty((h, w), np.uint8)
    # Row chunks bound the temporary copies np.partition makes.
    for y0 in range(0, h, rows_per_chunk):
        rows = slice(y0, y0 + rows_per_chunk)
        plate[rows] = _lower_median(stack[:, rows])
        # The spread over every sample, moving ones too: water, foliage and a thermal sensor's flicker
        # must raise the finder's thresholds there (the spread of the still samples alone cut the thermal
        # harbour's pseudo-label precision from .57 to .44).
        dev = np.abs(stack[:, rows].astype(np.int16) - plate[rows].astype(np.int16)).max(axis=-1)
        noise[rows] = _lower_median(dev.astype(np.uint8))
    unseen = np.zeros((h, w), bool)
    if method == "clean" and later is not None:
        threshold = np.maximum(float(MOTION_LEVELS), MOTION_K * _pair_flicker(frames, later))
        keep = np.ones((n, h, w), bool)
        for k, partner in enumerate(later):
            m = motion_mask(frames[k], partner, threshold) if partner is not None else None
            if m is not None:
                keep[k] = ~m
        # Fewer than a few still samples is no evidence of the empty scene (a slow coat's middle).
        unseen = keep.sum(axis=0) < min(MIN_STILL, n)
        keep[:, unseen] = True  # computed from every sample, then replaced by inpainting
        for y0 in range(0, h, rows_per_chunk):
            rows = slice(y0, y0 + rows_per_chunk)
            if not keep[:, rows].all():  # where nothing moved it stays the plain median
                plate[rows] = _masked_lower_median(stack[:, rows], keep[:, rows, :, None])
        if unseen.any():
            hole = unseen.astype(np.uint8)
            plate = cv2.inpaint(plate, hole, 5, cv2.INPAINT_TELEA)
    # A little spatial smoothing: the MAD of a handful of frames is itself noisy per pixel.
    noise_f = cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 2.0)
    return Plate(plate, noise_f, n, float(unseen.mean()))


def build_plate(video: str | Path, indices: list[int], progress: bool = True, method: str = "median",
                gap: int = 2) -> Plate:
    return build_plates(video, [indices], progress, method, gap)[0]


def _partner(i: int, indices: list[int], gap: int) -> int:
    """The frame a moment after i, or before it at the end of the set; never outside the set's span (a
    frame there may belong to the next segment's set), so a set shorter than the gap has no partners."""
    if i + gap <= indices[-1]:
        return i + gap
    return i - gap if i - gap >= indices[0] else i


def build_plates(video: str | Path, index_sets: list[list[int]], progress: bool = True,
                 method: str = "median", gap: int = 2) -> list[Plate]:
    """One plate per index set (the sets in time order, not overlapping: one per scene segment), read in
    one pass over the video; only one set's frames are held at a time. The clean plate also reads each
    sampled frame's partner `gap` frames away for its motion mask."""
    sets = [sorted(idx) for idx in index_sets]
    partners = [{i: _partner(i, idx, gap) for i in idx} if method == "clean" and len(idx) else {}
                for idx in sets]
    owner: dict[int, int] = {}
    for k, idx in enumerate(sets):
        for i in [*idx, *partners[k].values()]:
            owner.setdefault(i, k)
    plates: list[Plate | None] = [None] * len(sets)
    held: dict[int, np.ndarray] = {}
    current = 0

    def close(k: int) -> None:
        frames = [held[i] for i in sets[k] if i in held]
        if frames:
            later = [held[p] if p in held and p != i else None for i, p in partners[k].items() if i in held]
            plates[k] = median_plate(frames, method=method, later=later or None)
        held.clear()

    with task_progress("background plate", len(owner), progress) as advance:
        for i, frame in iter_frames(video, owner):
            if owner[i] != current:
                close(current)
                current = owner[i]
            held[i] = frame
            advance()
    close(current)
    if any(p is None for p in plates):
        k = plates.index(None)
        raise CctvkitError(f"cannot decode video (no frame for background plate {k})", video,
                           "pass a readable video with --video")
    return [p for p in plates if p is not None]
