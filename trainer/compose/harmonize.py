"""Make a pasted person look lit by the place it stands in, and make whole images vary like a real camera.

Person harmonisation is relative: a cutout was lit by the light at the spot it was cut from, and the plate
tells us how bright that spot and the new spot are. The cutout gets the brightness ratio of the two plate
regions (to a limited strength, clipped), which carries a person into a shadow without repainting their
clothes the colour of the ground, as plain mean/std matching to the surroundings would. One gain for all
channels: a per-channel ratio would mostly measure the ground's colour (grass vs paving), not the light's.
The ratio also sees ground albedo, not only light, hence the limited strength. Cutouts with no known source
spot fall back to a weak mean/std match to the surroundings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from trainer.compose.params import JitterParams

GAIN_LIMITS = (0.75, 1.33)
EXPAND = 0.25  # plate statistics over the person's box widened by this share on each side
FALLBACK_STRENGTH = 0.25  # mean/std matching to the surroundings is a guess: keep it weak


class PlateStats:
    """Box means and standard deviations of the plate in O(1) per box (integral images)."""

    def __init__(self, plate: np.ndarray):
        self.h, self.w = plate.shape[:2]
        f = plate.astype(np.float64)
        self.sum, self.sqsum = cv2.integral2(f)

    def region(self, box: Sequence[float], expand: float = EXPAND) -> tuple[np.ndarray, np.ndarray]:
        x1, y1, x2, y2 = box
        dx, dy = (x2 - x1) * expand, (y2 - y1) * expand
        xa, ya = int(np.clip(x1 - dx, 0, self.w - 1)), int(np.clip(y1 - dy, 0, self.h - 1))
        xb, yb = (
            int(np.clip(np.ceil(x2 + dx), xa + 1, self.w)),
            int(np.clip(np.ceil(y2 + dy), ya + 1, self.h)),
        )
        n = (xb - xa) * (yb - ya)
        s = self.sum[yb, xb] - self.sum[ya, xb] - self.sum[yb, xa] + self.sum[ya, xa]
        q = self.sqsum[yb, xb] - self.sqsum[ya, xb] - self.sqsum[yb, xa] + self.sqsum[ya, xa]
        mean = s / n
        return mean, np.sqrt(np.maximum(q / n - mean**2, 0.0))


def _apply(rgba: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    rgb = rgba[:, :, :3].astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)
    out[:, :, :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out


def harmonize(
    rgba: np.ndarray,
    stats: PlateStats,
    dst_box: Sequence[float],
    src_box: Sequence[float] | None,
    strength: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The cutout (all its pixels, so its carried surroundings move with it) re-lit for dst_box."""
    if strength <= 0:
        return rgba, {"mode": "none"}
    dst_mean, dst_std = stats.region(dst_box)
    if src_box is not None:
        src_mean, _ = stats.region(src_box)
        g = ((dst_mean.mean() + 1.0) / (src_mean.mean() + 1.0)) ** strength
        gain = np.full(3, np.clip(g, *GAIN_LIMITS))
        return _apply(rgba, gain, np.zeros(3)), {
            "mode": "relative",
            "gain": [round(float(g), 3) for g in gain],
        }
    person = rgba[:, :, 3] > 127
    if person.sum() < 4:
        return rgba, {"mode": "none"}
    px = rgba[:, :, :3][person].astype(np.float64)
    p_mean, p_std = px.mean(axis=0), px.std(axis=0) + 1.0
    s = strength * FALLBACK_STRENGTH
    gain = np.clip((1 - s) + s * dst_std / p_std, *GAIN_LIMITS)
    offset = (1 - gain) * p_mean + s * (dst_mean - p_mean)
    return _apply(rgba, gain, offset), {"mode": "local", "gain": [round(float(g), 3) for g in gain]}


def contact_shadow(img: np.ndarray, foot: tuple[int, int], height: float, strength: float) -> np.ndarray:
    """A soft dark ellipse on the ground at the feet: the ambient-occlusion shadow every standing person
    casts; without it pasted people look like they float. Drawn before the person, so only its rim shows."""
    if strength <= 0:
        return img
    rx, ry = max(2.0, 0.2 * height), max(1.0, 0.045 * height)
    sigma = max(1.0, 0.8 * ry)
    pad = int(3 * sigma + 1)
    H, W = img.shape[:2]
    x1, y1 = max(int(foot[0] - rx) - pad, 0), max(int(foot[1] - ry) - pad, 0)
    x2, y2 = min(int(foot[0] + rx) + pad + 1, W), min(int(foot[1] + ry) + pad + 1, H)
    if x2 <= x1 or y2 <= y1:
        return img
    mask = np.zeros((y2 - y1, x2 - x1), np.float32)
    cv2.ellipse(
        mask, (int(foot[0]) - x1, int(foot[1]) - y1), (int(round(rx)), int(round(ry))), 0, 0, 360, 1.0, -1
    )
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    out = img.copy()
    roi = out[y1:y2, x1:x2].astype(np.float32)
    roi *= (1.0 - strength * mask)[:, :, None]
    out[y1:y2, x1:x2] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
    return out


class NoiseBank:
    """One Gaussian noise field (bigger than the frame) made once per run; each image adds a randomly shifted
    window of it. Drawing fresh noise for 400 full frames would cost more than all the pasting together."""

    PAD = 64

    def __init__(self, frame_hw: tuple[int, int], seed: int):
        h, w = frame_hw
        rng = np.random.default_rng([seed, 0x6E015E])
        self.field = rng.standard_normal((h + self.PAD, w + self.PAD, 3), dtype=np.float32)
        self.h, self.w = h, w

    def window(self, dx: int, dy: int) -> np.ndarray:
        return self.field[dy : dy + self.h, dx : dx + self.w]


def sample_jitter(rng: np.random.Generator, p: JitterParams) -> dict[str, Any]:
    """The random draw for one image, as plain numbers (recorded in compose.json)."""
    return {
        "brightness": round(float(rng.uniform(-p.brightness, p.brightness)), 4),
        "contrast": round(float(1 + rng.uniform(-p.contrast, p.contrast)), 4),
        "gamma": round(float(np.exp(rng.uniform(-p.gamma, p.gamma))), 4),
        "white_balance": [
            round(float(1 + rng.uniform(-p.white_balance, p.white_balance)), 4) for _ in range(3)
        ],
        "noise_sigma": round(float(rng.uniform(*p.noise_sigma)), 3),
        "noise_offset": [int(rng.integers(NoiseBank.PAD)), int(rng.integers(NoiseBank.PAD))],
        "blur_sigma": round(float(rng.uniform(*p.blur_sigma)), 3) if rng.random() < p.blur_prob else 0.0,
        "jpeg_quality": int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)),
    }


def apply_jitter(img: np.ndarray, j: dict[str, Any], noise: NoiseBank) -> np.ndarray:
    """Brightness, contrast, gamma and white balance as one per-channel lookup table, then blur, then noise
    (sensor noise comes after the optics)."""
    x = np.arange(256, dtype=np.float32) / 255.0
    base = np.clip((x - 0.5) * j["contrast"] + 0.5 + j["brightness"], 0, 1) ** j["gamma"]
    table = np.stack([base * g for g in j["white_balance"]], axis=1)
    lut = np.clip(table * 255 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    out = cv2.LUT(img, lut)
    if j["blur_sigma"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), j["blur_sigma"])
    if j["noise_sigma"] > 0:
        # One saturating OpenCV pass (uint8 + float noise -> rounded uint8): 3x faster than the float
        # round trip through numpy, the compose stage's biggest cost per image.
        out = cv2.addWeighted(out, 1.0, noise.window(*j["noise_offset"]), j["noise_sigma"], 0.0, dtype=cv2.CV_8U)
    return out
