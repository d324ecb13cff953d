"""Where persons go: foot points on walkable ground, heights from the perspective, a cutout that fits,
and the resized, possibly mirrored cutout itself.

Feet are only placed on rows inside the perspective's observed row range: outside it the linear height model
is an extrapolation, and a person twice too big at the top of the frame teaches the detector nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.compose.scene import Cutout
from trainer.scene.perspective import Perspective

PLACE_TRIES = 25  # foot points tried per person before giving up on it (crowded small scenes)
PAD = 4  # px of transparent margin around a rendered cutout: room for feathering and Poisson's ring


@dataclass(frozen=True)
class Placement:
    cutout: int  # index into the scene's cutouts
    foot: tuple[int, int]  # frame pixels (x, y)
    target_height: float  # perspective height times the jitter
    scale: float  # resize factor applied to the cutout
    flip: bool
    xy: tuple[int, int]  # top-left corner of the resized cutout in the frame (may be outside it)
    size: tuple[int, int]  # (w, h) of the resized cutout

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The resized crop's extent in the frame (not clipped): used to keep persons apart."""
        return self.xy[0], self.xy[1], self.xy[0] + self.size[0], self.xy[1] + self.size[1]


class FootSampler:
    """Random foot points on walkable rows within the perspective row range.

    A row is picked with probability ~ sqrt(its walkable width), then a walkable column uniformly. Uniform
    over pixels would put most persons on the wide near rows; sqrt keeps plenty of small, far persons,
    which are the ones a CCTV detector finds hardest.
    """

    def __init__(
        self, walkable: np.ndarray, perspective: Perspective, min_person_px: float, source: str = ""
    ):
        lo = max(0, math.ceil(perspective.row_range[0]))
        hi = min(walkable.shape[0] - 1, math.floor(perspective.row_range[1]))
        rows, cols = [], []
        for r in range(lo, hi + 1):
            if perspective.a * r + perspective.b < min_person_px:
                continue
            c = np.flatnonzero(walkable[r])
            if len(c):
                rows.append(r)
                cols.append(c)
        if not rows:
            raise CctvkitError(
                f"no walkable pixel in the perspective row range {perspective.row_range} where a person "
                f"would be "
                f">= {min_person_px:g} px tall",
                source or None,
                "re-run the scene stage, or lower compose.min_person_px",
            )
        self.rows = np.asarray(rows)
        self.cols = cols
        w = np.sqrt(np.array([len(c) for c in cols], np.float64))
        self.cdf = np.cumsum(w / w.sum())

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        i = min(int(np.searchsorted(self.cdf, rng.random())), len(self.rows) - 1)
        cols = self.cols[i]
        return int(cols[rng.integers(len(cols))]), int(self.rows[i])


def choose_cutout(
    rng: np.random.Generator, heights: np.ndarray, pool: np.ndarray, target_h: float, max_upscale: float
) -> int:
    """A cutout from `pool` for a person target_h tall.

    Preferred: cutouts whose own height is close to the target (weight falls with |log scale|), because they
    were seen at a similar row, hence from a similar viewing angle, and need little resampling. Cutouts that
    would be enlarged more than max_upscale (blurry) are excluded unless nothing else is left.
    """
    h = heights[pool]
    log_s = np.log(target_h / h)
    ok = log_s <= math.log(max_upscale)
    if not ok.any():
        ok = h >= h.max() * 0.9  # only small cutouts: take the largest ones
    w = np.exp(-0.5 * (log_s / 0.5) ** 2) * ok
    w = w / w.sum() if w.sum() > 0 else ok / ok.sum()
    return int(pool[min(int(np.searchsorted(np.cumsum(w), rng.random())), len(pool) - 1)])


def geometry(
    cutout: Cutout, foot: tuple[int, int], scale: float, flip: bool
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left and size of the resized cutout so that its foot point lands on `foot`."""
    h0, w0 = cutout.rgba.shape[:2]
    w, h = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    ax = cutout.foot[0] * w / w0
    ay = cutout.foot[1] * h / h0
    if flip:
        ax = w - ax
    return (round(foot[0] - ax), round(foot[1] - ay)), (w, h)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def plan_persons(
    rng: np.random.Generator,
    sampler: FootSampler,
    perspective: Perspective,
    cutouts: Sequence[Cutout],
    pools: Sequence[np.ndarray],
    n: int,
    scale_jitter: tuple[float, float],
    flip_prob: float,
    iou_limit: float,
    max_upscale: float,
    shares: Sequence[float] = (1.0,),
) -> list[Placement]:
    """Up to n placements, sorted far-to-near (by foot row) so that pasting in order lets nearer persons
    occlude farther ones. Overlap beyond iou_limit is rejected; milder overlap is kept on purpose (partial
    occlusion is common in real scenes and the labels account for it).

    pools: the cutout indices of each person source (real, generated), drawn per person with `shares`
    (summing to 1). One source draws no random number for it, so a real-only compose is what it always was."""
    heights = np.array([c.height_px for c in cutouts], np.float64)
    placed: list[Placement] = []
    for _ in range(n):
        pool = pools[0] if len(pools) == 1 else pools[int(rng.choice(len(pools), p=np.asarray(shares)))]
        for _try in range(PLACE_TRIES):
            foot = sampler.sample(rng)
            target = float(perspective.height_at(foot[1])) * float(rng.uniform(*scale_jitter))
            idx = choose_cutout(rng, heights, pool, target, max_upscale)
            scale = target / cutouts[idx].height_px
            flip = bool(rng.random() < flip_prob)
            xy, size = geometry(cutouts[idx], foot, scale, flip)
            p = Placement(idx, foot, target, scale, flip, xy, size)
            if all(iou(p.box, q.box) <= iou_limit for q in placed):
                placed.append(p)
                break
    return sorted(placed, key=lambda p: (p.foot[1], p.foot[0]))


def render_cutout(cutout: Cutout, p: Placement) -> tuple[np.ndarray, tuple[int, int]]:
    """The cutout resized to p.size (and mirrored), padded by PAD px: RGBA uint8 and its frame top-left.

    The person is resized with premultiplied alpha: resizing plain RGBA blends the colour of transparent
    pixels into the edge, the classic dark or coloured halo of pasted objects. Transparent pixels keep the
    person's own surroundings (resized plainly) for the Poisson blend; the padding (edge-replicated colour,
    zero alpha) leaves room for feathering and for Poisson's boundary ring.
    """
    src = cutout.rgba.astype(np.float32)
    rgb, a = src[:, :, :3], src[:, :, 3:4]
    w, h = p.size
    interp = cv2.INTER_AREA if p.scale < 1.0 else cv2.INTER_LINEAR
    prem = cv2.resize(np.concatenate([rgb * (a * (1.0 / 255.0)), a], axis=2), (w, h), interpolation=interp)
    ctx = cv2.resize(rgb, (w, h), interpolation=interp)
    prem, ctx = prem.reshape(h, w, 4), ctx.reshape(h, w, 3)  # 1-px sizes drop the channel axis
    alpha = prem[:, :, 3:4]
    person = prem[:, :, :3] * 255.0 / np.maximum(alpha, 1e-3)
    out = np.concatenate([np.where(alpha > 1.0, person, ctx), alpha], axis=2)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if p.flip:
        out = out[:, ::-1]
    out = cv2.copyMakeBorder(np.ascontiguousarray(out), PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    out[:PAD, :, 3] = 0
    out[-PAD:, :, 3] = 0
    out[:, :PAD, 3] = 0
    out[:, -PAD:, 3] = 0
    return out, (p.xy[0] - PAD, p.xy[1] - PAD)
