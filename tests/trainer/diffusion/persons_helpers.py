"""Helpers of the person-generator tests: a micro config (16x40 crops, an 8-channel U-Net, 100
timesteps) that trains in well under a second per step on a busy CPU, and a generated data set of stick
figures (a head disc over a body block) in the images/ + masks/ layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

# One thread: the test machine is shared, and oversubscribed OpenMP threads slow everything down.
torch.set_num_threads(1)


def micro_config(**train: Any):
    from trainer.diffusion.defaults import make_config

    t = {"steps": 6, "batch": 4, "lr": 3e-3, "warmup": 5, "sample_every": 0, "log_every": 5, "ckpt_every": 1000,
         "ema_start": 0, "ema_decay": 0.9, "sample_n": 4, "sample_steps": 3}
    t.update(train)
    return make_config("tiny", {
        "data": {"width": 16, "height": 40, "holdout_every": 0},
        "model": {"channels": 8, "channel_mult": [1, 2], "attn_levels": [1], "heads": 2, "groups": 4},
        "diffusion": {"timesteps": 100},
        "sample": {"steps": 4, "batch": 8},
        "train": t,
    })


def make_figures(folder: Path, n: int = 12, seed: int = 0, half_masks: bool = True) -> Path:
    """n 60x120 photos-like images with one figure each; every third mask is stored at half size (same
    aspect) so the loader's resize path is used."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(n):
        h, w = 120, 60
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = rng.integers(40, 220, 3)
        img = (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        mask = np.zeros((h, w), np.uint8)
        cx, top = int(rng.integers(22, 38)), int(rng.integers(8, 20))
        cv2.circle(mask, (cx, top + 8), 8, 255, -1)
        cv2.rectangle(mask, (cx - 11, top + 16), (cx + 11, top + 60), 255, -1)
        cv2.rectangle(mask, (cx - 10, top + 60), (cx - 2, h - 8), 255, -1)
        cv2.rectangle(mask, (cx + 2, top + 60), (cx + 10, h - 8), 255, -1)
        color = rng.integers(0, 255, 3)
        img[mask > 0] = color
        img[(mask > 0) & (np.arange(h)[:, None] < top + 16)] = (224, 172, 140)  # a face-ish head
        cv2.imwrite(str(folder / "images" / f"{i:03d}.jpg"), img)
        if half_masks and i % 3 == 0:
            mask = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / "masks" / f"{i:03d}.png"), mask)
    return folder


