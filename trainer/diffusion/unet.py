"""The noise predictor: a U-Net that sees the noisy image and the person mask and predicts the noise.

The layout follows the DDPM / improved-diffusion family: residual blocks with GroupNorm + SiLU, the
sinusoidal timestep embedding injected into every residual block (as a scale and shift of the second norm),
self-attention only at the lowest resolutions (attention cost grows with the square of the pixel count),
and a skip connection from every encoder stage to the matching decoder stage. The mask enters as a fourth
input channel, so the silhouette constrains every layer from the first convolution on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.diffusion.defaults import ModelParams


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): cos and sin at geometrically spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _groups(channels: int, wanted: int) -> int:
    """The largest group count <= wanted that divides `channels` (GroupNorm needs an exact split)."""
    g = min(wanted, channels)
    while channels % g:
        g -= 1
    return g


def _zero(module: nn.Module) -> nn.Module:
    # Zero-initialised output layers make every residual block start as the identity and the whole net
    # start by predicting zero noise: training begins from a stable, well-scaled point.
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch, groups), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_ch, 2 * out_ch)  # scale and shift of norm2
        self.norm2 = nn.GroupNorm(_groups(out_ch, groups), out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all pixels of a (low-resolution) feature map, residual."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(ch, groups), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))  # (b, heads, hw, c/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # flash / memory-efficient kernels on a GPU
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Down(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Sequential):
    """A run of layers that all receive the time embedding (attention and resampling ignore it)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb)
        return x


class UNet(nn.Module):
    """(noisy image (B,3,H,W), mask (B,1,H,W) in [-1,1], timestep (B,)) -> predicted noise (B,3,H,W)."""

    def __init__(self, p: ModelParams, in_ch: int = 3, cond_ch: int = 1):
        super().__init__()
        ch, emb_ch, g = p.channels, 4 * p.channels, p.groups
        self.channels = ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.inp = nn.Conv2d(in_ch + cond_ch, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [ch]
        cur = ch
        last = len(p.channel_mult) - 1
        for level, mult in enumerate(p.channel_mult):
            for _ in range(p.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(cur, ch * mult, emb_ch, p.dropout, g)]
                cur = ch * mult
                if level in p.attn_levels:
                    layers.append(Attention(cur, p.heads, g))
                self.down.append(Stage(*layers))
                skips.append(cur)
            if level != last:
                self.down.append(Stage(Down(cur)))
                skips.append(cur)

        self.mid = Stage(ResBlock(cur, cur, emb_ch, p.dropout, g), Attention(cur, p.heads, g),
                         ResBlock(cur, cur, emb_ch, p.dropout, g))

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(p.channel_mult))):
            for i in range(p.num_res_blocks + 1):
                layers = [ResBlock(cur + skips.pop(), ch * mult, emb_ch, p.dropout, g)]
                cur = ch * mult
                if level in p.attn_levels:
                    layers.append(Attention(cur, p.heads, g))
                if level and i == p.num_res_blocks:
                    layers.append(Up(cur))
                self.up.append(Stage(*layers))
        self.out = nn.Sequential(nn.GroupNorm(_groups(cur, g), cur), nn.SiLU(),
                                 _zero(nn.Conv2d(cur, in_ch, 3, padding=1)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels).to(x.dtype))
        h = self.inp(torch.cat([x, mask.to(x.dtype)], dim=1))
        hs = [h]
        for stage in self.down:
            h = stage(h, emb)
            hs.append(h)
        h = self.mid(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
