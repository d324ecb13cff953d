"""Speed of the person generator: sampling throughput (cutouts/s) with DDIM at 25 and 50 steps, and training
steps/s, for a preset (random weights: speed does not depend on them) or a checkpoint.

    .venv/bin/python benchmarks/diffusion_speed.py --preset tiny                    # CPU
    .venv/bin/python benchmarks/diffusion_speed.py --preset base --device cuda      # one GPU (goal: >= 200/s @25)
    .venv/bin/python benchmarks/diffusion_speed.py --ckpt runs/persons/last.pt --steps 25 --batch 128

On CUDA it uses what training and sampling use: bf16 autocast, channels_last, TF32, cudnn autotuning; every
timing is preceded by a warm-up pass and bracketed by torch.cuda.synchronize(). Prints a table and one JSON
line (the last line of stdout) for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.errors import run_command  # noqa: E402
from trainer.diffusion.defaults import PRESETS, PersonsConfig, make_config  # noqa: E402
from trainer.diffusion.gaussian_diffusion import GaussianDiffusion, images_to_tensor  # noqa: E402
from trainer.diffusion.sample import pick_device  # noqa: E402
from trainer.diffusion.samplers import sample  # noqa: E402
from trainer.diffusion.unet import UNet, count_parameters  # noqa: E402


def figure_masks(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """n simple standing-figure masks (head disc + body + legs) with random widths and offsets."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, height, width), np.uint8)
    for i in range(n):
        cx = int(width / 2 + rng.uniform(-0.1, 0.1) * width)
        r = max(2, int(height * 0.06))
        top = int(height * 0.08)
        bw = int(width * rng.uniform(0.25, 0.4))
        cv2.circle(out[i], (cx, top + r), r, 255, -1)
        cv2.rectangle(out[i], (cx - bw, top + 2 * r), (cx + bw, int(height * 0.55)), 255, -1)
        cv2.rectangle(out[i], (cx - bw, int(height * 0.55)), (cx + bw // 3, int(height * 0.94)), 255, -1)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_speed(model: torch.nn.Module, diffusion: GaussianDiffusion, masks: torch.Tensor, steps: int,
                   repeats: int, device: torch.device) -> float:
    cuda = device.type == "cuda"
    gen = torch.Generator(device=device).manual_seed(0)
    sample(model, diffusion, masks, "ddim", 2, 0.0, gen, autocast=cuda, channels_last=cuda)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        sample(model, diffusion, masks, "ddim", steps, 0.0, gen, autocast=cuda, channels_last=cuda)
    sync(device)
    return repeats * len(masks) / (time.perf_counter() - t0)


def training_speed(cfg: PersonsConfig, model: torch.nn.Module, diffusion: GaussianDiffusion, batch: int,
                   steps: int, device: torch.device) -> float:
    cuda = device.type == "cuda"
    masks = figure_masks(batch, cfg.data.width, cfg.data.height, seed=1)
    rgb = np.random.default_rng(0).integers(0, 255, (batch, cfg.data.height, cfg.data.width, 3), dtype=np.uint8)
    x0 = images_to_tensor(rgb, device)
    m = torch.from_numpy(masks > 0).float()[:, None].to(device)
    if cuda:
        x0, m = x0.contiguous(memory_format=torch.channels_last), m.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator(device=device).manual_seed(0)
    model.train()

    def step() -> None:
        loss, _ = diffusion.loss(model, x0, m, gen, autocast=cuda and cfg.train.bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()

    step()  # warm-up (allocations, cudnn autotuning)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t0)


def main_args(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if args.ckpt:
        from trainer.diffusion.checkpoint import load_generator

        model, diffusion, cfg, _, _ = load_generator(args.ckpt, device)
    else:
        cfg = make_config(args.preset)
        torch.manual_seed(0)
        model = UNet(cfg.model).to(device)
        diffusion = GaussianDiffusion(cfg.diffusion)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if args.compile:
        model = torch.compile(model)
    w, h = cfg.data.width, cfg.data.height
    masks = torch.from_numpy(figure_masks(args.batch, w, h) > 0).float()[:, None].to(device)
    result: dict[str, object] = {"preset": cfg.preset, "size": f"{w}x{h}", "params_M": count_parameters(model) / 1e6,
                                 "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else
                                               f"cpu ({torch.get_num_threads()} threads)"),
                                 "batch": args.batch}
    model.eval()
    for steps in args.steps:
        result[f"ddim{steps}_cutouts_per_s"] = round(sampling_speed(model, diffusion, masks, steps, args.repeats,
                                                                    device), 3)
    if args.train_steps:
        tb = args.train_batch or cfg.train.batch
        result["train_batch"] = tb
        result["train_steps_per_s"] = round(training_speed(cfg, model, diffusion, tb, args.train_steps, device), 3)
    for k, v in result.items():
        print(f"{k:>24}: {v}")
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="tiny")
    ap.add_argument("--ckpt", help="a trained checkpoint instead of a preset with random weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64, help="cutouts per sampling batch")
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 50], help="DDIM step counts to time")
    ap.add_argument("--repeats", type=int, default=1, help="timed sampling batches per step count")
    ap.add_argument("--train-steps", type=int, default=10, help="timed training steps (0: skip)")
    ap.add_argument("--train-batch", type=int, help="default: the preset's train.batch")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--compile", action="store_true", help="torch.compile the U-Net (GPU)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        ap.error("--batch and --repeats must be >= 1")
    return run_command(main_args, args)


if __name__ == "__main__":
    sys.exit(main())
