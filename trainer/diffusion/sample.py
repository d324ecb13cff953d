"""Checkpoint -> RGBA person cutouts and a contact sheet.

The generated crop has a background (the model learned whole crops); the alpha channel comes from the
conditioning mask, eroded by one pixel and Gaussian-feathered, so the cutout's edge lies just inside the
figure and blends into whatever scene it is pasted on. The output folder appears only when complete:
cutouts/NNNNN.png, contact_sheet.png and cutouts.json (mask source, seed, sampler, checkpoint sha256).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from edge.atomic import atomic_dir, sha256_file
from edge.errors import CctvkitError
from trainer.diffusion.gaussian_diffusion import GaussianDiffusion, mask_to_tensor, tensor_to_images
from trainer.diffusion.samplers import SAMPLERS, sample


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CctvkitError(f"device '{name}' requested but CUDA is not available", fix="use --device cpu")
    return torch.device(name)


def generate(model: nn.Module, diffusion: GaussianDiffusion, masks: np.ndarray, sampler: str = "ddim",
             steps: int = 25, eta: float = 0.0, seed: int = 0, batch: int = 64,
             device: torch.device | str = "cpu", progress: bool = False) -> np.ndarray:
    """RGB uint8 (N,H,W,3) for masks (N,H,W) uint8. Batch k uses the generator seeded with seed + k, so
    the result depends on (weights, masks, sampler, steps, eta, seed, batch) only."""
    from rich.progress import Progress

    device = torch.device(device)
    cuda = device.type == "cuda"
    out = np.empty((*masks.shape, 3), np.uint8)
    starts = range(0, len(masks), batch)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("sampling", total=len(starts) * steps)
        for k, s in enumerate(starts):
            gen = torch.Generator(device=device).manual_seed(seed + k)
            m = mask_to_tensor(masks[s:s + batch], device)
            x = sample(model, diffusion, m, sampler, steps, eta, gen, autocast=cuda, channels_last=cuda,
                       on_step=lambda _: bar.advance(task))
            out[s:s + batch] = tensor_to_images(x)
    return out


def feathered_alpha(mask: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 alpha from a {0,255} mask: 1-px erosion, then a Gaussian edge of `sigma` pixels."""
    a = mask.astype(np.uint8)
    if sigma <= 0:
        return a
    a = cv2.erode(a, np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(a, (0, 0), sigmaX=sigma, sigmaY=sigma)


def to_rgba(rgb: np.ndarray, masks: np.ndarray, feather: float) -> np.ndarray:
    """(N,H,W,3) RGB + (N,H,W) masks -> (N,H,W,4) RGBA uint8."""
    alpha = np.stack([feathered_alpha(m, feather) for m in masks])
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def contact_sheet(rgba: np.ndarray, cols: int = 16, scale: int = 1, gap: int = 2) -> np.ndarray:
    """BGR image: every cutout composited over a light checkerboard (so alpha is visible), in a grid."""
    n, h, w, _ = rgba.shape
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // 4 + xx // 4) % 2)[..., None] == 0, 235, 200).astype(np.float32)
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        a = rgba[i, ..., 3:4].astype(np.float32) / 255
        tile = rgba[i, ..., :3].astype(np.float32) * a + checker * (1 - a)
        r, c = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y:y + h, x:x + w] = cv2.cvtColor(tile.round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    if scale > 1:
        sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return sheet


def encode_png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_cutouts(out_dir: str | Path, rgba: np.ndarray, meta: dict[str, Any], sheet_max: int = 256) -> Path:
    """out_dir/cutouts/00001.png ..., contact_sheet.png, cutouts.json; all or nothing (atomic_dir)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / "cutouts").mkdir()
        files = []
        for i, img in enumerate(rgba, 1):
            name = f"cutouts/{i:05d}.png"
            bgra = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
            (tmp / name).write_bytes(encode_png(bgra))
            files.append(name)
        scale = 2 if rgba.shape[1] < 128 else 1
        (tmp / "contact_sheet.png").write_bytes(encode_png(contact_sheet(rgba[:sheet_max], scale=scale)))
        (tmp / "cutouts.json").write_text(json.dumps({**meta, "files": files}, indent=1))
    return out_dir


def run_sample(ckpt: str | Path, out_dir: str | Path, n: int = 64, sampler: str | None = None,
               steps: int | None = None, eta: float | None = None, seed: int = 0, batch: int | None = None,
               scene_cutouts: str | Path | None = None, only_scene: bool = False, device: str = "auto",
               progress: bool = True, force: bool = False, use_ema: bool = True) -> dict[str, Any]:
    """`trainer persons sample`: n cutouts from the checkpoint's EMA weights, masks drawn from its bank
    (plus a run's scene cutouts when given)."""
    from trainer.diffusion.checkpoint import load_generator
    from trainer.diffusion.masks import MaskBank

    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise CctvkitError("output folder already exists", out_dir, "pass another --out or --force")
    if n < 1:
        raise CctvkitError(f"--n {n} must be at least 1", fix="pass --n 1 or more")
    dev = pick_device(device)
    model, diffusion, cfg, bank, _ = load_generator(ckpt, dev, use_ema=use_ema)
    sp = cfg.sample
    sampler, steps = sampler or sp.sampler, steps or sp.steps
    eta = sp.eta if eta is None else eta
    if sampler not in SAMPLERS:
        raise CctvkitError(f"unknown sampler '{sampler}'", fix=f"choose one of: {', '.join(SAMPLERS)}")
    if scene_cutouts:
        scene = MaskBank.from_cutouts(scene_cutouts, cfg.data)
        bank = scene if (only_scene or bank is None) else bank.extend(scene)
    if bank is None:
        raise CctvkitError("checkpoint has no mask bank", ckpt, "pass --scene-cutouts RUN/scene/cutouts")
    masks, idx = bank.draw(n, seed)
    if cfg.train.channels_last and dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    rgb = generate(model, diffusion, masks, sampler, steps, eta, seed, batch or sp.batch, dev, progress)
    seconds = time.perf_counter() - t0
    rgba = to_rgba(rgb, masks, sp.feather)
    meta = {"checkpoint": str(ckpt), "checkpoint_sha256": sha256_file(ckpt), "sampler": sampler,
            "steps": steps, "eta": eta, "seed": seed, "weights": "ema" if use_ema else "raw",
            "size": list(bank.size), "seconds": round(seconds, 2),
            "mask_sources": [bank.sources[i] for i in idx]}
    write_cutouts(out_dir, rgba, meta)
    return {"out": str(out_dir), "n": n, "seconds": seconds, "cutouts_per_s": n / max(seconds, 1e-9)}
