"""Hard paste: every pixel with alpha > 50 % is copied as is. The baseline the other blends are judged by
(and what a label check compares against: no softening, no colour change)."""

from __future__ import annotations

import numpy as np

from trainer.compose.blend.base import alpha_over, in_frame


def blend(background: np.ndarray, cutout: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    alpha = (cutout[:, :, 3] > 127).astype(np.float32)
    return alpha_over(background, cutout[:, :, :3], alpha, xy), in_frame(alpha, background.shape[:2], xy)
