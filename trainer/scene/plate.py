"""Background plate: the per-pixel temporal median of frames spread over the training part.

People who move are in any one place for a minority of the sampled frames, so the median is the empty
scene. The per-pixel spread around it (median absolute deviation) is kept too: it tells the person
finder where the background itself flickers (foliage, compression noise on texture) so thresholds can
rise there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.scene.frames import iter_frames
from trainer.scene.progress import task_progress


@dataclass(frozen=True)
class Plate:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    noise: np.ndarray  # (H, W) float32, per-pixel MAD of the max channel deviation, smoothed
    n_frames: int


def _lower_median(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median that stays in uint8 (the lower middle element): np.median would allocate float64
    copies of the whole stack, ~8x the memory for no visible gain."""
    k = (stack.shape[axis] - 1) // 2
    return np.partition(stack, k, axis=axis).take(k, axis=axis)


def median_plate(frames: list[np.ndarray], rows_per_chunk: int = 64) -> Plate:
    """Plate and noise map from a list of same-sized BGR frames."""
    if not frames:
        raise ValueError("median_plate needs at least one frame")
    stack = np.stack(frames)  # (N, H, W, 3) uint8
    n, h, w, _ = stack.shape
    plate = np.empty((h, w, 3), np.uint8)
    noise = np.empty((h, w), np.uint8)
    # Row chunks bound the temporary copies np.partition makes.
    for y0 in range(0, h, rows_per_chunk):
        chunk = stack[:, y0 : y0 + rows_per_chunk]
        med = _lower_median(chunk)
        plate[y0 : y0 + rows_per_chunk] = med
        dev = np.abs(chunk.astype(np.int16) - med.astype(np.int16)).max(axis=-1).astype(np.uint8)
        noise[y0 : y0 + rows_per_chunk] = _lower_median(dev)
    # A little spatial smoothing: the MAD of a handful of frames is itself noisy per pixel.
    noise_f = cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 2.0)
    return Plate(plate, noise_f, n)


def build_plate(video: str | Path, indices: list[int], progress: bool = True) -> Plate:
    return build_plates(video, [indices], progress)[0]


def build_plates(video: str | Path, index_sets: list[list[int]], progress: bool = True) -> list[Plate]:
    """One plate per index set (the sets in time order, not overlapping: one per scene segment), read in
    one pass over the video; only one set's frames are held at a time, as for a single plate."""
    owner = {i: k for k, idx in enumerate(index_sets) for i in idx}
    plates: list[Plate | None] = [None] * len(index_sets)
    frames: list[np.ndarray] = []
    current = 0

    def close(k: int) -> None:
        if frames:
            plates[k] = median_plate(frames)
            frames.clear()

    with task_progress("background plate", len(owner), progress) as advance:
        for i, frame in iter_frames(video, owner):
            if owner[i] != current:
                close(current)
                current = owner[i]
            frames.append(frame)
            advance()
    close(current)
    if any(p is None for p in plates):
        k = plates.index(None)
        raise CctvkitError(f"cannot decode video (no frame for background plate {k})", video,
                           "pass a readable video with --video")
    return [p for p in plates if p is not None]
