"""Where people can stand: the ground their feet were seen on, grown by a person's width, gaps between
nearby tracks closed, and cut to where a whole person of the expected height fits inside the frame."""

from __future__ import annotations

import cv2
import numpy as np

from trainer.scene.perspective import Perspective


def walkable_mask(
    feet: np.ndarray,
    shape: tuple[int, int],
    perspective: Perspective,
    width_ratio: float = 0.4,
    radius_factor: float = 0.6,
) -> np.ndarray:
    """uint8 0/255 mask of frame size `shape` (h, w) from foot points (N, 2) in pixels (x, y).

    Each foot point paints a disc as wide as a person there (perspective-scaled), so one track already
    makes a path a body wide and far-away ground is not over-painted. A closing of a couple of person
    widths joins parallel tracks into the surface they walk on.
    """
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    feet = np.asarray(feet, np.float64).reshape(-1, 2)
    if len(feet) == 0:
        return mask
    heights = perspective.height_at(feet[:, 1])
    for (x, y), ph in zip(feet, np.atleast_1d(heights), strict=True):
        r = max(2, int(round(radius_factor * width_ratio * ph)))
        cv2.circle(mask, (int(round(x)), int(round(y))), r, 255, thickness=-1)
    # Closing scale: two person widths at the median foot row.
    med_h = float(np.median(np.atleast_1d(heights)))
    k = max(3, int(round(2 * width_ratio * med_h)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # Drop specks (a single stray foot point far from any path) below 1% of the total area.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 2:
        total = stats[1:, cv2.CC_STAT_AREA].sum()
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < 0.01 * total:
                mask[labels == i] = 0
    return mask & fits_in_frame(shape, perspective, width_ratio)


def fits_in_frame(shape: tuple[int, int], perspective: Perspective, width_ratio: float = 0.4) -> np.ndarray:
    """uint8 0/255: foot positions where a person of the expected size lies wholly inside the frame."""
    h, w = shape
    rows = np.arange(h, dtype=np.float64)
    ph = np.atleast_1d(perspective.height_at(rows))
    half_w = np.ceil(0.5 * width_ratio * ph).astype(int) + 1
    ok_row = (rows - ph >= 1) & (rows <= h - 2)  # the head stays below the top edge
    out = np.zeros((h, w), np.uint8)
    for y in np.nonzero(ok_row)[0]:
        out[y, half_w[y] : max(half_w[y], w - half_w[y])] = 255
    return out
