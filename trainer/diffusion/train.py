"""The training loop: one code path for CPU, one GPU and DistributedDataParallel under torchrun.

    trainer persons train --data ../shared/data/human-seg --out runs/persons --preset tiny
    torchrun --nproc_per_node 8 -m trainer.cli persons train --data DATA --out OUT --preset base

Exact resume: every random draw of step k (batch indices, flips, timesteps, noise, dropout) comes from
generators seeded with (seed, k, rank), and the checkpoint holds model, EMA, optimizer, step and the global
RNG states; so `--resume` continues a run bit-for-bit as if it had never stopped (same device and world size).
Only rank 0 writes files. On CUDA: bf16 autocast (no loss scaling needed, unlike fp16), channels_last,
TF32 matmuls; the CPU runs plain fp32.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge.atomic import atomic_write_bytes, atomic_write_text
from edge.errors import CctvkitError
from trainer.diffusion.checkpoint import config_of, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainer.diffusion.data import PersonData, load_dataset, split
from trainer.diffusion.defaults import PersonsConfig
from trainer.diffusion.ema import EMA, unwrap
from trainer.diffusion.gaussian_diffusion import GaussianDiffusion, images_to_tensor
from trainer.diffusion.masks import MaskBank
from trainer.diffusion.sample import contact_sheet, encode_png, generate, pick_device, to_rgba
from trainer.diffusion.unet import UNet, count_parameters

LOG_FIELDS = ["step", "loss", "mse", "l1", "lr", "grad_norm", "seconds"]


@dataclass
class Dist:
    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # we called init_process_group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_distributed(force: bool | None = None) -> Dist:
    """DDP when WORLD_SIZE > 1 (torchrun sets it) or when forced; NCCL on CUDA, gloo on CPU. A forced world
    of one needs no launcher: the rendezvous address defaults to a free local port."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not (world > 1 if force is None else force):
        return Dist()
    if not dist.is_available():
        raise CctvkitError("this torch build has no torch.distributed", fix="run without --ddp")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return Dist(True, dist.get_rank(), dist.get_world_size(), local, owned=False)
    init = "env://"
    if "MASTER_ADDR" not in os.environ:
        if world > 1:
            raise CctvkitError(f"WORLD_SIZE={world} but no MASTER_ADDR", fix="launch with torchrun --nproc_per_node N")
        # A fresh port each time, passed directly: left in os.environ it would outlive this run and a later
        # run in the same process (or a child that inherits it) would find it taken.
        init = f"tcp://127.0.0.1:{_free_port()}"
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=init, rank=rank, world_size=world)
    return Dist(True, rank, world, local, owned=True)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _batch(data: PersonData, n: int, gen: torch.Generator, hflip: bool, device: torch.device,
           channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(0, len(data), (n,), generator=gen).numpy()
    flip = (torch.rand(n, generator=gen) < 0.5).numpy() & hflip
    imgs, masks = data.images[idx].copy(), data.masks[idx].copy()
    imgs[flip], masks[flip] = imgs[flip][:, :, ::-1], masks[flip][:, :, ::-1]
    x0 = images_to_tensor(imgs, device)
    m = torch.from_numpy(masks > 0).float()[:, None].to(device, non_blocking=True)
    if channels_last:
        x0, m = x0.contiguous(memory_format=torch.channels_last), m.contiguous(memory_format=torch.channels_last)
    return x0, m


def _lr(cfg: PersonsConfig, step: int) -> float:
    """Linear warm-up, then constant (the usual choice for diffusion models; no decay schedule ties the
    learning rate to a total step count, so a run can be extended with --steps and --resume)."""
    w = cfg.train.warmup
    return cfg.train.lr * min(1.0, (step + 1) / w) if w else cfg.train.lr


def _same_model(a: PersonsConfig, b: PersonsConfig) -> bool:
    return (a.model, a.diffusion, a.data) == (b.model, b.diffusion, b.data)


def _read_log(path: Path, upto: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_loss(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss (mean over log interval)")
    if len(loss) >= 10:
        k = max(2, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.8, label=f"moving mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted MSE + L1 on the noise")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def sample_grid(model: nn.Module, diffusion: GaussianDiffusion, cfg: PersonsConfig, bank: MaskBank,
                device: torch.device, path: Path) -> None:
    masks, _ = bank.draw(cfg.train.sample_n, seed=cfg.train.seed, jitter=False)  # the same masks every time
    rgb = generate(model, diffusion, masks, "ddim", cfg.train.sample_steps, 0.0, cfg.train.seed,
                   cfg.train.sample_n, device)
    rgba = to_rgba(rgb, masks, cfg.sample.feather)
    atomic_write_bytes(path, encode_png(contact_sheet(rgba, cols=8, scale=2 if rgba.shape[1] < 128 else 1)))


def train(cfg: PersonsConfig, data_dir: str | Path | PersonData, out_dir: str | Path, resume: bool = False,
          progress: bool = True, ddp: bool | None = None, device: str = "auto") -> dict[str, Any]:
    """Train (or continue) a generator; returns a summary with the per-step losses of this process.

    data_dir: a folder (data.py's layouts) or crops already made at cfg.data's size (a run's scene cutouts
    plus extra data: trainer/diffusion/runscene.py)."""
    out = Path(out_dir)
    ckpt_path = out / "last.pt"
    if ckpt_path.exists() and not resume:
        raise CctvkitError("output folder already holds a checkpoint", ckpt_path,
                           "pass --resume to continue it or another --out")
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None and not _same_model(config_of(state, ckpt_path), cfg):
        raise CctvkitError("checkpoint was trained with different model/diffusion/data settings", ckpt_path,
                           "resume with the same preset and config (only train.* may change)")
    dist = setup_distributed(ddp)
    try:
        data = data_dir if isinstance(data_dir, PersonData) else Path(data_dir)
        return _train(cfg, data, out, ckpt_path, state, progress, dist, device)
    finally:
        if dist.owned:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _train(cfg: PersonsConfig, data_dir: Path | PersonData, out: Path, ckpt_path: Path, state: dict[str, Any] | None,
           progress: bool, dist: Dist, device_name: str) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tc = cfg.train
    if tc.batch % dist.world:
        raise CctvkitError(f"train.batch {tc.batch} is not divisible by the world size {dist.world}",
                           fix="choose a batch that is a multiple of the number of processes")
    device = torch.device(f"cuda:{dist.local_rank}") if (dist.enabled and torch.cuda.is_available()) \
        else pick_device(device_name)
    cuda = device.type == "cuda"
    autocast, channels_last = tc.bf16 and cuda, tc.channels_last and cuda
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    if isinstance(data_dir, PersonData):
        data, data_dir = data_dir, Path(data_dir.source or "<crops>")
    else:
        data = load_dataset(data_dir, cfg.data, progress=progress and dist.main)
    train_set, held = split(data, cfg.data.holdout_every)
    if state is not None and state.get("mask_bank"):
        bank = MaskBank.from_state(state["mask_bank"])
    else:
        keep = np.random.default_rng(tc.seed).permutation(len(train_set))[:tc.mask_bank_max]
        bank = MaskBank(train_set.masks[np.sort(keep)])

    torch.manual_seed(tc.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = UNet(cfg.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = EMA(model, tc.ema_decay, tc.ema_start)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.999))
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        set_rng_state(state["rng"])
    net: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    diffusion = GaussianDiffusion(cfg.diffusion)
    per_rank = tc.batch // dist.world

    log_path = out / "loss.csv"
    rows: list[dict[str, Any]] = _read_log(log_path, step) if dist.main else []
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        atomic_write_text(out / "config.json", cfg.model_dump_json(indent=1))

    def checkpoint() -> None:
        if dist.main:
            save_checkpoint(ckpt_path, {
                "config": cfg.model_dump(), "step": step, "model": unwrap(model).state_dict(),
                "ema": ema.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
                "mask_bank": bank.to_state(),
                "data": {"folder": str(data_dir), "n_train": len(train_set), "n_holdout": len(held),
                         "holdout": held.names},
            })

    losses: list[float] = []
    acc: dict[str, list[float]] = {"loss": [], "mse": [], "l1": [], "grad_norm": []}
    start_step, t0 = step, time.perf_counter()
    columns = [TextColumn("[bold]persons[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not (progress and dist.main)) as bar:
        task = bar.add_task(f"{cfg.preset} {cfg.data.width}x{cfg.data.height} "
                            f"{count_parameters(model) / 1e6:.2f}M params", total=tc.steps, completed=step,
                            loss="-")
        model.train()
        while step < tc.steps:
            seed = _step_seed(tc.seed, step, dist.rank)
            torch.manual_seed(seed)  # dropout and anything else on the global generators
            cpu_gen = torch.Generator().manual_seed(seed)
            dev_gen = cpu_gen if not cuda else torch.Generator(device=device).manual_seed(seed)
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            x0, m = _batch(train_set, per_rank, cpu_gen, cfg.data.hflip, device, channels_last)
            loss, parts = diffusion.loss(net, x0, m, dev_gen, autocast)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            step += 1
            ema.update(model, step)

            value = float(loss.detach())
            if not np.isfinite(value):
                raise CctvkitError(f"loss became {value} at step {step}", fix="lower train.lr or train.grad_clip")
            losses.append(value)
            for k, v in (("loss", value), ("mse", parts["mse"]), ("l1", parts["l1"]), ("grad_norm", float(gnorm))):
                acc[k].append(v)
            if step % tc.log_every == 0 or step == tc.steps:
                means = {k: float(np.mean(v)) for k, v in acc.items()}
                if dist.enabled:  # the logged loss is the mean over all ranks
                    import torch.distributed as tdist

                    t = torch.tensor([means[k] for k in acc], device=device)
                    tdist.all_reduce(t)
                    means = dict(zip(acc, (t / dist.world).tolist(), strict=True))
                acc = {k: [] for k in acc}
                if dist.main:
                    rows.append({"step": step, **{k: f"{v:.6g}" for k, v in means.items()},
                                 "lr": f"{_lr(cfg, step - 1):.3g}",
                                 "seconds": f"{time.perf_counter() - t0:.2f}"})
                    _write_log(log_path, rows)
                bar.update(task, loss=f"{means['loss']:.4f}")
            if step % tc.ckpt_every == 0 or step == tc.steps:
                checkpoint()
            if dist.main and tc.sample_every and (step % tc.sample_every == 0 or step == tc.steps):
                sample_grid(ema.model, diffusion, cfg, bank, device, out / "samples" / f"step_{step:07d}.png")
            bar.update(task, completed=step)
    seconds = time.perf_counter() - t0
    if dist.main:
        plot_loss(rows, out / "loss.png")
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
    return {"step": step, "steps_run": step - start_step, "losses": losses, "seconds": seconds,
            "steps_per_s": (step - start_step) / max(seconds, 1e-9), "checkpoint": str(ckpt_path),
            "n_train": len(train_set), "n_holdout": len(held), "world_size": dist.world,
            "params": count_parameters(model), "device": str(device)}
