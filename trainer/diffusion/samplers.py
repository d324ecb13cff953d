"""DDPM (ancestral) and DDIM sampling over any subsequence of the training timesteps.

For consecutive timesteps t > s of the subsequence, with a_t = alpha_bar(t):
  DDPM  x_s ~ N(mu, var): the exact posterior q(x_s | x_t, x0) of the respaced process
        mu = sqrt(a_s) (1 - a_t/a_s) / (1 - a_t) x0 + sqrt(a_t/a_s) (1 - a_s) / (1 - a_t) x_t
        var = (1 - a_t/a_s) (1 - a_s) / (1 - a_t)
  DDIM  x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sigma^2) eps + sigma z,
        sigma = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s)   (eta = 0: deterministic)
x0 is predicted from eps and clamped to [-1, 1] at every step (and eps re-derived from the clamped x0 for
DDIM, so the two stay consistent). All noise comes from one torch.Generator seeded by the caller: the
same seed, masks and weights give the same cutouts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from trainer.diffusion.gaussian_diffusion import GaussianDiffusion

SAMPLERS = ("ddim", "ddpm")


def timestep_subsequence(T: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spread over 0..T-1, always including T-1 (start from pure noise), descending."""
    steps = max(1, min(steps, T))
    seq = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))
    return [int(t) for t in seq[::-1]]


@torch.inference_mode()
def sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    mask01: torch.Tensor,
    sampler: str = "ddim",
    steps: int = 25,
    eta: float = 0.0,
    gen: torch.Generator | None = None,
    autocast: bool = False,
    channels_last: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Images (B,3,H,W) in [-1,1] for masks (B,1,H,W) in {0,1}; `model` is used in eval mode."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}' ({', '.join(SAMPLERS)})")
    device = mask01.device
    b, _, h, w = mask01.shape
    cond = mask01 * 2 - 1
    x = torch.randn((b, 3, h, w), generator=gen, device=device)
    if channels_last:
        x, cond = x.contiguous(memory_format=torch.channels_last), cond.contiguous(memory_format=torch.channels_last)
    seq = timestep_subsequence(diffusion.T, steps)
    ac = diffusion.alphas_cumprod
    was_training = model.training
    model.eval()
    try:
        for i, t in enumerate(seq):
            a_t = float(ac[t])
            a_s = float(ac[seq[i + 1]]) if i + 1 < len(seq) else 1.0  # the last step lands on x0
            tt = torch.full((b,), t, device=device, dtype=torch.long)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                eps = model(x, cond, tt)
            eps = eps.float()
            x0 = ((x - (1 - a_t) ** 0.5 * eps) / a_t**0.5).clamp(-1, 1)
            if i + 1 == len(seq):
                x = x0
            elif sampler == "ddpm":
                ratio = a_t / a_s
                beta = 1 - ratio
                mean = (a_s**0.5 * beta / (1 - a_t)) * x0 + (ratio**0.5 * (1 - a_s) / (1 - a_t)) * x
                var = beta * (1 - a_s) / (1 - a_t)
                x = mean + var**0.5 * torch.randn(x.shape, generator=gen, device=device)
            else:
                eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
                sigma = eta * ((1 - a_s) / (1 - a_t)) ** 0.5 * (1 - a_t / a_s) ** 0.5
                x = a_s**0.5 * x0 + max(1 - a_s - sigma**2, 0.0) ** 0.5 * eps
                if sigma > 0:
                    x = x + sigma * torch.randn(x.shape, generator=gen, device=device)
            if on_step is not None:
                on_step(i)
    finally:
        model.train(was_training)
    return x.contiguous()
