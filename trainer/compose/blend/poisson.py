"""Poisson (gradient-domain) blending with cv2.seamlessClone, limited to a smooth colour correction.

The clone region is the person's mask dilated by a few pixels, so its boundary runs through the person's own
surroundings (the plate where it was cut, carried in the cutout's transparent pixels), and the solver shifts
the person's colours so that this boundary matches the new place. Taken raw, that shift is the well-known
Poisson colour bleeding: a person cut from grey paving and cloned onto grass turns green. So only a bounded,
low-frequency part of it is used: (clone - feathered paste), blurred and clipped to +-LIMIT levels, is added
to the feathered paste on the person's pixels. NORMAL_CLONE uses the person's gradients; MIXED_CLONE keeps
whichever gradient is stronger, so strong ground texture pulls harder (an option for variety).

Guarded for borders: seamlessClone fails on a region that leaves the image, so the region is clipped 1 px
inside the frame, and a region too small to solve (a few pixels) is just feathered.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.compose.blend import feather
from trainer.compose.blend.base import overlap

MARGIN = 1  # px kept free at the frame border
MIN_SIDE = 4  # smaller clip regions are feathered instead
LIMIT = 24.0  # max colour shift (0..255 levels) taken from the Poisson solution
_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _clone(
    background: np.ndarray, cutout: np.ndarray, xy: tuple[int, int], flag: int
) -> tuple[np.ndarray, np.ndarray]:
    person = cutout[:, :, 3] > 127
    ov = overlap(background.shape[:2], person.shape, xy, MARGIN)
    if ov is None or ov.width < MIN_SIDE or ov.height < MIN_SIDE:
        return feather.blend(background, cutout, xy)
    region = cv2.dilate(person.astype(np.uint8) * 255, _KERNEL, iterations=1)[ov.cut]
    if cv2.countNonZero(region) < MIN_SIDE * MIN_SIDE:
        return feather.blend(background, cutout, xy)
    src = np.ascontiguousarray(cutout[:, :, :3][ov.cut])
    bx, by, bw, bh = cv2.boundingRect(region)
    # seamlessClone centres the mask's bounding box on `center` (integer halves), so this puts every cutout
    # pixel back exactly where the overlap says it belongs.
    center = (ov.fx1 + bx + bw // 2, ov.fy1 + by + bh // 2)
    cloned = cv2.seamlessClone(src, background, region, center, flag)
    out, alpha = feather.blend(background, cutout, xy)
    sl = ov.frame
    diff = cloned[sl].astype(np.float32) - out[sl].astype(np.float32)
    diff = np.clip(cv2.GaussianBlur(diff, (0, 0), max(1.0, person.shape[0] / 25)), -LIMIT, LIMIT)
    fixed = out[sl].astype(np.float32) + diff * alpha[ov.cut][:, :, None]
    out[sl] = np.clip(fixed + 0.5, 0, 255).astype(np.uint8)
    return out, alpha


def blend(background: np.ndarray, cutout: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return _clone(background, cutout, xy, cv2.NORMAL_CLONE)


def blend_mixed(
    background: np.ndarray, cutout: np.ndarray, xy: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    return _clone(background, cutout, xy, cv2.MIXED_CLONE)
