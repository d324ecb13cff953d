"""The bank of silhouettes that sampling conditions on.

Real silhouettes come from two places: the training masks (stored, bit-packed, in the checkpoint) and the
cutouts the scene stage found in the user's own video (a run's scene/cutouts/*.png, RGBA), so the generated
people stand, walk and face the way people in that camera do. Each draw picks a silhouette, flips it half of
the time and applies a mild affine jitter (small rotation, scale and shift) so repeated draws differ.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from edge.errors import CctvkitError
from trainer.diffusion.data import _images_in, _read, mask_crop
from trainer.diffusion.defaults import DataParams


class MaskBank:
    def __init__(self, masks: np.ndarray, sources: list[str] | None = None):
        if masks.ndim != 3 or len(masks) == 0:
            raise CctvkitError("the mask bank is empty", fix="train on data with masks or pass --scene-cutouts")
        self.masks = np.where(masks > 127, 255, 0).astype(np.uint8)
        self.sources = sources or ["train"] * len(masks)

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.masks.shape[2], self.masks.shape[1]

    def extend(self, other: MaskBank) -> MaskBank:
        if other.size != self.size:
            raise ValueError(f"mask sizes differ: {other.size} vs {self.size}")
        return MaskBank(np.concatenate([self.masks, other.masks]), self.sources + other.sources)

    # -- storage in a checkpoint: bit-packed (1/8 of the bytes), a plain uint8 tensor so torch.load can use
    # weights_only=True.
    def to_state(self) -> dict[str, object]:
        n, h, w = self.masks.shape
        packed = np.packbits(self.masks.reshape(n, -1) > 0, axis=1)
        return {"packed": torch.from_numpy(packed), "shape": [n, h, w]}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> MaskBank:
        n, h, w = (int(v) for v in state["shape"])  # type: ignore[union-attr]
        bits = np.unpackbits(state["packed"].numpy(), axis=1, count=h * w)  # type: ignore[union-attr]
        return cls(bits.reshape(n, h, w) * 255)

    @classmethod
    def from_cutouts(cls, folder: str | Path, p: DataParams) -> MaskBank:
        """Alpha channels of RGBA PNG cutouts (a run's scene/cutouts), letterboxed like the training crops."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CctvkitError("cutout folder not found", folder, "pass a run's scene/cutouts folder")
        masks, names = [], []
        for path in _images_in(folder):
            img = _read(path, cv2.IMREAD_UNCHANGED)
            if img.ndim != 3 or img.shape[2] != 4:
                continue  # plain images (e.g. a plate) are not cutouts
            m = mask_crop(np.where(img[..., 3] > 127, 255, 0).astype(np.uint8), p)
            if m is not None:
                masks.append(m)
                names.append(f"scene:{path.name}")
        if not masks:
            raise CctvkitError("no RGBA cutouts with a nonempty alpha found", folder,
                               "pass the scene/cutouts folder of a run made by `trainer scene`")
        return cls(np.stack(masks), names)

    def draw(self, n: int, seed: int, jitter: bool = True) -> tuple[np.ndarray, list[int]]:
        """n masks (n,H,W) uint8 {0,255} and the bank index of each; a pure function of (bank, n, seed)."""
        masks, idx, _ = self.draw_flipped(n, seed, jitter)
        return masks, idx

    def draw_flipped(self, n: int, seed: int, jitter: bool = True) -> tuple[np.ndarray, list[int], list[bool]]:
        """draw(), plus whether each mask was mirrored (the persons stage records it)."""
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self), n) if n > len(self) else rng.permutation(len(self))[:n]
        out = np.empty((n, *self.masks.shape[1:]), np.uint8)
        flips = []
        for k, i in enumerate(idx):
            m = self.masks[i]
            flips.append(bool(rng.random() < 0.5))
            if flips[-1]:
                m = m[:, ::-1]
            out[k] = jitter_mask(m, rng) if jitter else m
        return out, [int(i) for i in idx], flips


def jitter_mask(mask: np.ndarray, rng: np.random.Generator, max_deg: float = 4.0, max_scale: float = 0.05,
                max_shift: float = 0.03) -> np.ndarray:
    """A mild random similarity transform about the silhouette's centre; the original when it would push the
    person (mostly) out of the crop."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask.copy()
    cx, cy = float(xs.mean()), float(ys.mean())
    deg = rng.uniform(-max_deg, max_deg)
    scale = 1.0 + rng.uniform(-max_scale, max_scale)
    m = cv2.getRotationMatrix2D((cx, cy), deg, scale)
    m[0, 2] += rng.uniform(-max_shift, max_shift) * w
    m[1, 2] += rng.uniform(-max_shift, max_shift) * h
    out = cv2.warpAffine(np.ascontiguousarray(mask), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    out = np.where(out > 127, 255, 0).astype(np.uint8)
    return out if (out > 0).sum() > 0.8 * len(ys) else mask.copy()
