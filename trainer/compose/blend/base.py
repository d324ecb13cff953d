"""What every blend plug-in shares: the signature and the frame/cutout overlap arithmetic.

A blend takes (background BGR uint8, cutout RGBA uint8 already resized, top-left (x, y) of the cutout in the
frame; it may hang over the frame border) and returns (new background, effective alpha). The effective alpha
is float32 in 0..1 with the cutout's shape: the share of each cutout pixel that ended up in the image, which
is what the label box is computed from. The input background is never modified.

Transparent cutout pixels may carry the person's own surroundings (the plate where it was cut out): blends
that only use the alpha ignore them, Poisson uses them as the boundary it adapts to the new place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BlendFn = Callable[[np.ndarray, np.ndarray, tuple[int, int]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Overlap:
    """The part of a cutout placed at (x, y) that lies inside the frame (optionally `margin` px inside it)."""

    fx1: int
    fy1: int
    fx2: int
    fy2: int
    cx1: int
    cy1: int

    @property
    def frame(self) -> tuple[slice, slice]:
        return slice(self.fy1, self.fy2), slice(self.fx1, self.fx2)

    @property
    def cut(self) -> tuple[slice, slice]:
        return slice(self.cy1, self.cy1 + self.fy2 - self.fy1), slice(
            self.cx1, self.cx1 + self.fx2 - self.fx1
        )

    @property
    def width(self) -> int:
        return self.fx2 - self.fx1

    @property
    def height(self) -> int:
        return self.fy2 - self.fy1


def overlap(
    frame_hw: tuple[int, int], cut_hw: tuple[int, int], xy: tuple[int, int], margin: int = 0
) -> Overlap | None:
    H, W = frame_hw
    h, w = cut_hw
    x, y = xy
    fx1, fy1 = max(x, margin), max(y, margin)
    fx2, fy2 = min(x + w, W - margin), min(y + h, H - margin)
    if fx2 <= fx1 or fy2 <= fy1:
        return None
    return Overlap(fx1, fy1, fx2, fy2, fx1 - x, fy1 - y)


def alpha_over(background: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, xy: tuple[int, int]) -> np.ndarray:
    """background with rgb laid over it at xy with float alpha (h, w) in 0..1; a new array."""
    out = background.copy()
    ov = overlap(background.shape[:2], alpha.shape, xy)
    if ov is None:
        return out
    a = alpha[ov.cut][:, :, None]
    roi = out[ov.frame].astype(np.float32)
    roi += (rgb[ov.cut].astype(np.float32) - roi) * a
    out[ov.frame] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
    return out


def in_frame(
    alpha: np.ndarray, frame_hw: tuple[int, int], xy: tuple[int, int], margin: int = 0
) -> np.ndarray:
    """alpha with the pixels outside the frame (or its margin) zeroed: they were not pasted."""
    ov = overlap(frame_hw, alpha.shape, xy, margin)
    out = np.zeros_like(alpha)
    if ov is not None:
        out[ov.cut] = alpha[ov.cut]
    return out
