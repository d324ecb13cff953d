"""Background plate: per pixel, the empty scene's value from frames spread over a scene segment.

Where people pass by, they cover a pixel in a minority of the sampled frames and the plain temporal
median is the empty scene. Where the scene never clears (a concourse with 30-50 people in view at any
time) the median of a pixel that people cover most of the time is a blend of clothes: the plate keeps
ghosted people, the foreground against it is wrong and everything after it learns from ghosts. So the
"clean" plate (the default) is built from the pixels without people:

1. Moving pixels are left out: each sampled frame is compared with one a moment later (`gap` frames);
   what changed, grown into the moving bodies, is not a sample of the empty scene there.
2. Of what is left, the median; but where that median is itself a blend (far fewer samples near it than
   in the densest grey-level window, or the densest window's own median is elsewhere), the densest
   window's median: people differ from each other, the empty scene is the value that recurs.
3. Pixels never seen empty are filled from their surroundings (inpainting), and their share is kept:
   the scene's self-check reports it as ghosting the plate could not remove.

"median" is the plain temporal median everywhere (the plate before the clean one; kept for comparison).
The per-pixel spread around the plate (median absolute deviation of the samples used) is kept too: it
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
# Grey levels are counted in bins of this width; a window is a bin and its two neighbours (24 levels:
# wider than sensor noise and JPEG, narrower than the difference between most clothes and floors).
BIN = 8
_N_BINS = 256 // BIN
# The densest window must hold this many times the samples near the median before the median is called
# a blend of passers-by (a crowd pixel: 3-5x; a pixel that is only noisy, sea or a thermal sensor: ~1).
GHOST_RATIO = 1.5
# ...or the densest window's median must lie this far (max channel) from the plain median.
MOVED_LEVELS = 2 * BIN
# Frame-to-frame change (max channel, after matching exposure) that counts as movement.
MOTION_LEVELS = 25
# A pixel needs this many samples without movement to be called seen empty.
MIN_STILL = 4
# A frame pair changed over more than this share: a cut or an exposure jump, not people; no mask.
MAX_MOVING_SHARE = 0.6


@dataclass(frozen=True)
class Plate:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    noise: np.ndarray  # (H, W) float32, per-pixel MAD of the max channel deviation, smoothed
    n_frames: int
    # Share of pixels whose value came from the densest window, not the median (people there in most
    # kept samples), and share never seen without movement (filled from around them).
    uncleared: float = 0.0
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


def _grey(stack: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 BGR -> (...) uint8 grey (integer weights close to ITU-R BT.601)."""
    s = stack.astype(np.uint16)
    return ((29 * s[..., 0] + 150 * s[..., 1] + 77 * s[..., 2]) >> 8).astype(np.uint8)


def _windows(grey: np.ndarray, keep: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N, h, w) grey samples, which of them count, (h, w) grey levels -> (lo, hi, share, ratio): each
    pixel's densest window of 3 bins as a grey range (inclusive-exclusive), the share of the counted
    samples in it, and how many times more samples it holds than the window around the level `at`."""
    n, h, w = grey.shape
    pixels = h * w
    # One bincount over (bin, pixel) pairs counts every pixel's histogram at once; samples that do not
    # count go to an extra bin that is dropped.
    bins = np.where(keep, grey // BIN, _N_BINS).reshape(n, pixels).astype(np.int64)
    flat = bins * pixels + np.arange(pixels)
    counts = np.bincount(flat.ravel(), minlength=(_N_BINS + 1) * pixels).reshape(_N_BINS + 1, pixels)
    padded = np.pad(counts[:_N_BINS], ((1, 1), (0, 0)))
    window = padded[:-2] + padded[1:-1] + padded[2:]  # window[b] counts bins b-1, b, b+1
    centre = np.argmax(window, axis=0)
    columns = np.arange(pixels)
    densest = window[centre, columns]
    around = window[at.reshape(pixels) // BIN, columns]
    ratio = (densest / np.maximum(around, 1)).reshape(h, w)
    share = (densest / np.maximum(keep.reshape(n, pixels).sum(axis=0), 1)).reshape(h, w)
    centre = centre.reshape(h, w)
    return ((centre - 1) * BIN).astype(np.int16), ((centre + 2) * BIN).astype(np.int16), share, ratio


def motion_mask(frame: np.ndarray, later: np.ndarray) -> np.ndarray | None:
    """Pixels that changed between a frame and one a moment later, joined and filled into the moving
    bodies; None when nearly everything changed (a cut). A wide, evenly coloured coat moving slowly
    changes only at its edges and keeps its middle: the densest-window step is what catches that."""
    a = frame.astype(np.float32)
    b = later.astype(np.float32)
    gain = float(np.median((a[::4, ::4].sum(axis=-1) + 3.0) / (b[::4, ::4].sum(axis=-1) + 3.0)))
    moved = (np.abs(a - b * gain).max(axis=-1) > MOTION_LEVELS).astype(np.uint8) * 255
    if moved.mean() / 255.0 > MAX_MOVING_SHARE:
        return None
    s = max(1.0, frame.shape[0] / 576.0)  # kernels sized for 576 rows, people scale with the frame
    ellipse = lambda w, h: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(w * s) | 1, int(h * s) | 1))  # noqa: E731
    moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    moved = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, ellipse(9, 21))
    contours, _ = cv2.findContours(moved, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(moved, contours, -1, 255, thickness=cv2.FILLED)
    return cv2.dilate(moved, ellipse(7, 7)) > 0


def median_plate(frames: list[np.ndarray], rows_per_chunk: int = 64, method: str = "clean",
                 moving: list[np.ndarray | None] | None = None) -> Plate:
    """Plate and noise map from same-sized BGR frames; moving: each frame's motion mask (None: none)."""
    if not frames:
        raise ValueError("median_plate needs at least one frame")
    if method not in METHODS:
        raise ValueError(f"plate method {method!r}: valid are {', '.join(METHODS)}")
    stack = np.stack(frames)  # (N, H, W, 3) uint8
    n, h, w, _ = stack.shape
    plate = np.empty((h, w, 3), np.uint8)
    noise = np.empty((h, w), np.uint8)
    # Row chunks bound the temporary copies np.partition, the sorts and the histograms make.
    for y0 in range(0, h, rows_per_chunk):
        plate[y0 : y0 + rows_per_chunk] = _lower_median(stack[:, y0 : y0 + rows_per_chunk])
    if method == "median":
        for y0 in range(0, h, rows_per_chunk):
            chunk = stack[:, y0 : y0 + rows_per_chunk]
            dev = np.abs(chunk.astype(np.int16) - plate[y0 : y0 + rows_per_chunk].astype(np.int16))
            noise[y0 : y0 + rows_per_chunk] = _lower_median(dev.max(axis=-1).astype(np.uint8))
        return Plate(plate, cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 2.0), n)
    # Exposure drifts (a thermal camera's gain control moves whole frames by 100 grey levels): every
    # sample is compared at the plain median's exposure, with the median-ratio gain the foreground uses.
    gains = np.median((_grey(stack[:, ::4, ::4]).astype(np.float32) + 3.0)
                      / (_grey(plate[::4, ::4]).astype(np.float32) + 3.0), axis=(1, 2))
    gains = np.clip(gains, 0.4, 2.5)[:, None, None, None].astype(np.float32)
    keep_all = np.ones((n, h, w), bool)
    for k, m in enumerate(moving or []):
        if m is not None:
            keep_all[k] = ~m
    # Fewer than a few still samples is no evidence of the empty scene (a slow coat is still in the middle).
    unseen = keep_all.sum(axis=0) < min(MIN_STILL, n)
    keep_all[:, unseen] = True  # computed from every sample, then replaced by inpainting
    uncleared = 0
    for y0 in range(0, h, rows_per_chunk):
        rows = slice(y0, y0 + rows_per_chunk)
        level = np.clip(stack[:, rows] / gains, 0, 255).astype(np.uint8)
        keep = keep_all[:, rows]
        med = _masked_lower_median(level, keep[..., None])
        grey = _grey(level)
        lo, hi, share, ratio = _windows(grey, keep, _grey(med))
        # Candidates: the empty scene is not the majority of the kept samples, or far fewer lie near the
        # median than in the densest window. A pixel that is only noisy has a low share too, but its
        # median sits inside its one broad peak: the window's median is then the median give or take a
        # few levels, and the median stays.
        ys, xs = np.nonzero((share < 0.5) | (ratio >= GHOST_RATIO))
        in_window = ((grey >= lo) & (grey < hi))[:, ys, xs] & keep[:, ys, xs]
        modal = _masked_lower_median(level[:, ys, xs], in_window[..., None])
        moved = np.abs(modal.astype(np.int16) - med[ys, xs].astype(np.int16)).max(axis=-1) > MOVED_LEVELS
        ghosted = moved | (ratio[ys, xs] >= GHOST_RATIO)
        ys, xs, in_window = ys[ghosted], xs[ghosted], in_window[:, ghosted]
        med[ys, xs] = modal[ghosted]
        uncleared += len(ys)
        used = keep.copy()
        used[:, ys, xs] = in_window  # the spread of the samples that show the empty scene
        dev = np.abs(level.astype(np.int16) - med.astype(np.int16)).max(axis=-1).astype(np.uint8)
        noise[rows] = _masked_lower_median(dev, used)
        plate[rows] = med
    if unseen.any():
        hole = unseen.astype(np.uint8)
        plate = cv2.inpaint(plate, hole, 5, cv2.INPAINT_TELEA)
        noise = cv2.inpaint(noise, hole, 5, cv2.INPAINT_TELEA)
    # A little spatial smoothing: the MAD of a handful of frames is itself noisy per pixel.
    noise_f = cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 2.0)
    return Plate(plate, noise_f, n, uncleared / float(h * w), float(unseen.mean()))


def build_plate(video: str | Path, indices: list[int], progress: bool = True, method: str = "clean",
                gap: int = 2) -> Plate:
    return build_plates(video, [indices], progress, method, gap)[0]


def _partner(i: int, indices: list[int], gap: int) -> int:
    """The frame a moment after i, or before it at the end of the set (never outside the set's span: a
    one-frame set has no partner)."""
    if len(indices) < 2:
        return i
    return i + gap if i + gap <= indices[-1] or i - gap < indices[0] else i - gap


def build_plates(video: str | Path, index_sets: list[list[int]], progress: bool = True,
                 method: str = "clean", gap: int = 2) -> list[Plate]:
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
            moving = [motion_mask(held[i], held[p]) if p in held and p != i else None
                      for i, p in partners[k].items() if i in held]
            plates[k] = median_plate(frames, method=method, moving=moving or None)
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
