"""Moving-pixel mask of one frame against the background plate.

A passing cloud or the camera's auto-exposure scales every pixel value by about the same factor (light
is linear, and a pure power-law gamma keeps it a factor), so (1) the frame is divided by its global gain
against the plate (the median ratio: most pixels are background). Then in Lab, where a cast shadow is
'same colour (a, b), darker (L)': (2) a pixel is moving when its L or its (a, b) distance exceeds a
threshold that grows with that pixel's own background noise, and (3) darker-but-same-colour pixels are
called shadow and dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.scene.params import SceneParams
from trainer.scene.plate import Plate

_NEIGHBOURS = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
# A vertical line: removes anything less than 5 px tall. Fluttering barrier tape and wires are thin
# horizontal strips that otherwise glue themselves to the people passing them.
_THIN_STRIPS = cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5))
# Taller than wide: joins head, torso and legs (and the two halves of a person behind a thin pole)
# without gluing side-by-side people together.
_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 11))


class Foreground:
    def __init__(self, plate: Plate, params: SceneParams):
        self.params = params
        self.plate_sum = plate.image.astype(np.float32).sum(axis=-1)[::4, ::4] + 3.0
        lab = _lab(plate.image.astype(np.float32))
        self.plate_l = lab[..., 0] + 1.0  # +1: ratios stay finite on black pixels
        # The plate's range over each 3x3 neighbourhood: a frame pixel inside that range is background.
        # A one-pixel camera wobble or JPEG ringing on brick and window edges then stays quiet, at the
        # cost of a person's outline shrinking by at most a pixel on textured ground.
        self.lo = cv2.erode(lab, _NEIGHBOURS)
        self.hi = cv2.dilate(lab, _NEIGHBOURS)
        self.lo[..., 0] += 1.0
        self.hi[..., 0] += 1.0
        self.luma_thr = np.maximum(params.fg_luma_threshold, params.fg_noise_k * plate.noise)
        self.chroma_thr = np.maximum(params.fg_chroma_threshold, 0.5 * params.fg_noise_k * plate.noise)
        self.shape = plate.image.shape[:2]
        # Restless background (fluttering tape, swaying twigs): pixels whose own spread is well above
        # the frame's typical spread, grown a little so a strip's edges are covered too.
        typical = float(np.median(plate.noise))
        restless = (plate.noise > max(2.0 * typical, 4.0)).astype(np.uint8)
        restless = cv2.dilate(restless, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
        self.restless: np.ndarray | None = restless.astype(bool) if restless.any() else None

    def raw(self, frame: np.ndarray) -> np.ndarray:
        """Boolean moving-pixel mask before any morphology."""
        if frame.shape[:2] != self.shape:
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, plate {self.shape[1]}x{self.shape[0]}")
        f = frame.astype(np.float32)
        gain = float(np.median((f[::4, ::4].sum(axis=-1) + 3.0) / self.plate_sum))
        gain = min(max(gain, 0.4), 2.5)
        lab = _lab(f / gain if abs(gain - 1.0) > 0.01 else f)
        frame_l = lab[..., 0] + 1.0
        rel = frame_l / self.plate_l
        d_l = np.maximum(frame_l - self.hi[..., 0], self.lo[..., 0] - frame_l)
        ab = lab[..., 1:]
        diff_ab = np.maximum(np.maximum(ab - self.hi[..., 1:], self.lo[..., 1:] - ab), 0.0)
        d_c = np.sqrt(diff_ab[..., 0] ** 2 + diff_ab[..., 1] ** 2)
        moving = (d_l > self.luma_thr) | (d_c > self.chroma_thr)
        lo, hi = self.params.shadow_ratio
        shadow = (rel > lo) & (rel < hi) & (d_c < self.params.shadow_chroma)
        return moving & ~shadow

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """uint8 0/255 cleaned mask: speckle removed, person parts joined, holes filled."""
        m = self.raw(frame).astype(np.uint8) * 255
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _OPEN)
        if self.restless is not None:
            # Only where the background itself moves: elsewhere the same opening would shave arms off.
            stripped = cv2.morphologyEx(m, cv2.MORPH_OPEN, _THIN_STRIPS)
            m = np.where(self.restless, stripped, m)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _CLOSE)
        return fill_holes(m)


def _lab(bgr: np.ndarray) -> np.ndarray:
    """float BGR 0..255 -> float Lab on OpenCV's 8-bit scale (L 0..255, a and b centred on 128), so the
    thresholds read like 8-bit differences."""
    lab = cv2.cvtColor(np.clip(bgr, 0.0, 255.0) * (1.0 / 255.0), cv2.COLOR_BGR2LAB)
    lab[..., 0] *= 255.0 / 100.0
    lab[..., 1:] += 128.0
    return lab


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill what the outer contours enclose (a grey shirt on grey asphalt leaves holes in the torso)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 255, thickness=cv2.FILLED)
    return out
