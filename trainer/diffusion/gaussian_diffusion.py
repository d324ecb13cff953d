"""The forward (noising) process, its schedules and the training loss.

Images live in [-1, 1]; the mask is {-1, +1} when given to the network and {0, 1} in the loss weights.
Schedules are the two of Ho et al. 2020 (linear, rescaled so any number of steps spans the same noise range)
and Nichol & Dhariwal 2021 (cosine in alpha_bar, betas capped at 0.999). Tables are computed in float64 and
gathered per timestep into float32 tensors, so rounding does not depend on the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.diffusion.defaults import DiffusionParams


def make_betas(schedule: str, timesteps: int) -> np.ndarray:
    if schedule == "linear":
        scale = 1000.0 / timesteps  # keeps the end-point noise level when T changes
        return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)
    if schedule == "cosine":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array([min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), 0.999)
                         for i in range(timesteps)], dtype=np.float64)
    raise ValueError(f"unknown beta schedule '{schedule}' (linear, cosine)")


def weight_map(mask01: torch.Tensor, p: DiffusionParams) -> torch.Tensor:
    """Per-pixel loss weight (B,1,H,W): 1 on background, 1 + person_weight on the person, and another
    head_weight on the top `head_fraction` of each silhouette (head and shoulders decide whether a figure reads
    as a person, and they are small, so an unweighted loss under-trains them). Normalised to mean 1 per image
    so the loss scale does not depend on how much of the crop the person fills."""
    b, _, h, _ = mask01.shape
    rows = mask01.amax(dim=3)[:, 0] > 0.5  # (B, H): rows the person touches
    idx = torch.arange(h, device=mask01.device)[None].expand(b, h)
    big = torch.full_like(idx, h)
    top = torch.where(rows, idx, big).amin(dim=1)
    bottom = torch.where(rows, idx, -big).amax(dim=1)
    cut = top + ((bottom - top + 1).clamp(min=0) * p.head_fraction).ceil().long()
    head_rows = (idx < cut[:, None]).to(mask01.dtype)[:, None, :, None]  # (B,1,H,1)
    w = 1.0 + p.person_weight * mask01 + p.head_weight * mask01 * head_rows
    return w / w.mean(dim=(1, 2, 3), keepdim=True)


class GaussianDiffusion:
    def __init__(self, p: DiffusionParams):
        self.p = p
        self.T = p.timesteps
        betas = make_betas(p.schedule, p.timesteps)
        self.betas = betas
        self.alphas_cumprod = np.cumprod(1.0 - betas)

    def _at(self, table: np.ndarray, t: torch.Tensor) -> torch.Tensor:
        """table[t] as a (B,1,1,1) float32 tensor on t's device."""
        vals = torch.from_numpy(table.astype(np.float32)).to(t.device)[t.long()]
        return vals[:, None, None, None]

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return self._at(self.alphas_cumprod, t)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise."""
        ab = self.alpha_bar(t)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clamp: bool = True
                   ) -> torch.Tensor:
        ab = self.alpha_bar(t)
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clamp else x0

    def loss(self, model: nn.Module, x0: torch.Tensor, mask01: torch.Tensor, gen: torch.Generator,
             autocast: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted MSE + l1_weight * weighted L1 between the true and the predicted noise at a uniformly
        drawn timestep. All randomness comes from `gen`, so a training step is a pure function of its seed."""
        b = x0.shape[0]
        t = torch.randint(0, self.T, (b,), generator=gen, device=x0.device)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        cond = mask01 * 2 - 1
        with torch.autocast(device_type=x0.device.type, dtype=torch.bfloat16, enabled=autocast):
            eps = model(x_t, cond, t)
        err = eps.float() - noise
        w = weight_map(mask01, self.p)
        mse = (w * err.pow(2)).mean()
        l1 = (w * err.abs()).mean()
        total = mse + self.p.l1_weight * l1
        return total, {"mse": float(mse.detach()), "l1": float(l1.detach())}


def mask_to_tensor(masks: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,H,W) uint8 {0,255} or bool -> (N,1,H,W) float {0,1}."""
    m = torch.from_numpy(np.ascontiguousarray(masks > 0).astype(np.float32))
    return m[:, None].to(device)


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,H,W,3) uint8 RGB -> (N,3,H,W) float in [-1,1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) in [-1,1] -> (N,H,W,3) uint8 RGB."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def downsample_mask(mask01: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return (F.interpolate(mask01, size=size, mode="area") > 0.5).float()
