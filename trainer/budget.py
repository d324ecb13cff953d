"""A wall-clock budget for training (`trainer demo --budget 15m`, or train.time_budget in the config).

Epochs are the wrong unit for a user: the same 12 epochs take 10 minutes on 2 CPU cores and 20 s on a
GPU. A budget is split between the detector's rounds (round 0, then the self-training rounds) and the
classifier, and each training gets its share as Ultralytics' own `time` argument (it re-plans the epoch
count and learning-rate schedule after the first epoch, and stops on time inside an epoch). What the
budget cannot buy is said before anything starts: an epoch's cost is estimated by timing two training
steps of the architecture on this machine (GPU when there is one), so "too small" is known in seconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from edge.errors import CctvkitError

_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}
# An epoch = its training steps + data loading, validation, checkpoints. Measured (trainer demo --budget 15m,
# vtest, 2 CPU cores, yolo11n at 320, 320 images): probe estimate 50 s of steps, real epochs 45.5 s with
# validation (the probe's random batch runs slower than cached images). 1.0 keeps the estimate on the safe side.
EPOCH_OVERHEAD = 1.0
SETUP_SECONDS = 15.0  # per training on CPU: data set caching and the final validation, outside Ultralytics' `time`
CLASSIFIER_SHARE = 0.15  # of a stage budget: the classifier's images are small and it converges fast
SELF_TRAINING_SHARE = 0.4
PROBE_BATCH = 4  # of the detector's time, split evenly over the self-training rounds


def parse_budget(text: str, where: str = "--budget") -> float:
    """'15m', '90s', '1h30m', '2.5h' -> seconds."""
    s = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise CctvkitError(f"{where} '{text}' is not a duration", fix=f"write {where} like 15m, 90s or 1h30m")
    seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise CctvkitError(f"{where} '{text}' is zero", fix=f"give {where} a positive duration, e.g. 15m")
    return seconds


def fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def step_seconds(arch: str, imgsz: int, batch: int, device: str, task: str = "detect") -> float:
    """Seconds of one training step (forward, backward, optimiser) of a fresh model on this device."""
    import torch

    from export.offline import load_model

    net = load_model(task, None, arch).model
    dev = torch.device("cuda:0" if device not in ("cpu", "mps") else device)
    net = net.to(dev).train()
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    probe = min(batch, PROBE_BATCH)  # per-image cost is about linear in the batch: time a small one
    x = torch.rand(probe, 3, imgsz, imgsz, device=dev)
    times = []
    for _ in range(3):  # the first step allocates and picks kernels: not counted
        t0 = time.perf_counter()
        out = net(x)
        outs = out if isinstance(out, list | tuple) else [out]
        loss = sum(o.float().mean() for o in _tensors(outs))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:]) * batch / probe


def _tensors(outs: Any) -> list[Any]:
    import torch

    flat: list[Any] = []
    for o in outs:
        if isinstance(o, torch.Tensor):
            flat.append(o)
        elif isinstance(o, list | tuple):
            flat += _tensors(o)
        elif isinstance(o, dict):
            flat += _tensors(list(o.values()))
    return flat


@dataclass(frozen=True)
class TrainPlan:
    """The seconds each training of the train stage may take, and what one epoch is estimated to cost."""

    budget: float
    detector_rounds: list[float]  # round 0, then each self-training round
    classifier: float
    detector_epoch: float
    classifier_epoch: float

    def describe(self) -> dict[str, Any]:
        return {"budget_seconds": round(self.budget, 1),
                "detector_round_seconds": [round(s, 1) for s in self.detector_rounds],
                "classifier_seconds": round(self.classifier, 1),
                "estimated_detector_epoch_seconds": round(self.detector_epoch, 1),
                "estimated_classifier_epoch_seconds": round(self.classifier_epoch, 1),
                "how": "Ultralytics' `time` per training: it re-plans the epochs after the first one"}


def plan_training(budget: float, *, rounds: int, **kw: Any) -> TrainPlan:
    """The plan with as many of the configured self-training rounds as the budget gives an epoch each."""
    for r in range(rounds, 0, -1):
        try:
            return _plan(budget, rounds=r, **kw)
        except CctvkitError:
            continue
    return _plan(budget, rounds=0, **kw)


def _plan(budget: float, *, rounds: int, det_images: int, cls_images: int, det_step: float,
                  cls_step: float, batch: int, where: str = "--budget") -> TrainPlan:
    """Split a train stage's budget; a CctvkitError when a training's share is less than one epoch."""
    det_epoch = EPOCH_OVERHEAD * det_step * max(1, -(-det_images // batch))
    cls_epoch = EPOCH_OVERHEAD * cls_step * max(1, -(-cls_images // batch))
    budget -= SETUP_SECONDS * (2 + rounds)
    cls_s = max(CLASSIFIER_SHARE * budget, cls_epoch)
    det_s = budget - cls_s
    round0 = det_s * (1 - SELF_TRAINING_SHARE) if rounds else det_s
    det_rounds = [round0] + [(det_s - round0) / rounds] * rounds if rounds else [round0]
    if det_s <= 0 or min(det_rounds) < det_epoch:
        det_min = det_epoch / (1 - SELF_TRAINING_SHARE if rounds else 1.0)
        if rounds:
            det_min = max(det_min, det_epoch * rounds / SELF_TRAINING_SHARE)
        need = max(det_min / (1 - CLASSIFIER_SHARE), det_min + cls_epoch) + SETUP_SECONDS * (2 + rounds)
        more = f" (and {rounds} self-training round{'s' * (rounds > 1)} after it)" if rounds else ""
        raise CctvkitError(f"{where} leaves {fmt(max(det_s, 0))} for the detector's training{more}; one epoch of "
                           f"{det_images} images takes about {fmt(det_epoch)} here",
                           fix=f"give training at least {fmt(need)} (a larger {where}), or train on fewer images "
                               "(compose.n_images) or a smaller input (train.detector_imgsz)")
    return TrainPlan(budget, det_rounds, cls_s, det_epoch, cls_epoch)


def after_training_reserve(total: float) -> float:
    """What a demo keeps back for export + bench after training (measured on 2 CPU cores: 113 s export with
    its verification + 22 s bench on a slow day, stop 13's fresh clone)."""
    return max(150.0, 0.1 * total)


def check_demo_budget(total: float, cfg: Any) -> TrainPlan:
    """Before a demo starts: is --budget enough for one epoch of the composed set on this machine? Scene and
    compose are not known yet and counted as free, so this only catches what can never fit."""
    from trainer.yolo.train import resolve_device

    p, c = cfg.train, cfg.compose
    device = resolve_device(p.device)
    n = max(1, round(c.n_images * (1 - c.val_fraction)))
    return plan_training(total - after_training_reserve(total), rounds=p.self_training.rounds, det_images=n,
                         cls_images=n, det_step=step_seconds(p.detector_arch, p.detector_imgsz, p.batch, device),
                         cls_step=step_seconds("yolo11n", p.classifier_imgsz, p.batch, device, task="classify"),
                         batch=p.batch, where="--budget")
