"""Feather: erode the alpha a little, then blur it, and alpha-composite.

Motion-mask cutouts carry a rim of mixed person/background pixels (and some shadow); eroding drops that rim,
and the Gaussian blur turns the remaining hard edge into the soft one a real camera's optics produce, so the
detector cannot key on a cut-out outline. Both scale with the person's size: a 20 px person has no pixel to
spare, a 300 px one has a wide rim.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.compose.blend.base import alpha_over, in_frame

_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
MIN_ERODE_H = 40  # below this a 1 px rim is a large share of a limb; the label box would shrink visibly


def feather_alpha(alpha_u8: np.ndarray) -> np.ndarray:
    h = alpha_u8.shape[0]
    erode = 0 if h < MIN_ERODE_H else int(np.clip(round(h / 120), 1, 3))
    a = cv2.erode(alpha_u8, _KERNEL, iterations=erode) if erode else alpha_u8
    sigma = float(np.clip(h / 150, 0.5, 1.5))
    return cv2.GaussianBlur(a.astype(np.float32) * (1.0 / 255.0), (0, 0), sigma)


def blend(background: np.ndarray, cutout: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    alpha = feather_alpha(cutout[:, :, 3])
    return alpha_over(background, cutout[:, :, :3], alpha, xy), in_frame(alpha, background.shape[:2], xy)
