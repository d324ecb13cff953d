"""Train/val split by source material, in time blocks of the video.

Splitting images at random would put composites of the same cutout (and real frames a few frames apart)
on both sides, and val would measure memory. Instead the video timeline is cut into blocks, a few blocks
spread over the video go to val (lighting drifts over a day, so val should not be one end of it), and
every cutout and real frame inherits its block's split. Items within a guard distance of a train/val
boundary are left out, so one person walking across a boundary does not land on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

GUARD_FRACTION = 0.1  # of a block's length, on each side of a train/val boundary


@dataclass(frozen=True)
class SplitResult:
    cutouts: list[str | None]  # "train" | "val" | None (guard band: unused)
    real: list[str | None]
    method: str  # "time" | "rank" | "index": which fallback was needed
    val_blocks: list[int]
    # Generated persons, by the frame of the scene silhouette each was conditioned on: the same block rule
    # as real cutouts, so a generated person never lands on the other side from the person it was drawn on.
    generated: list[str | None] = field(default_factory=list)


def val_blocks(n_blocks: int, val_fraction: float) -> list[int]:
    """Evenly spread block ids for val, never all of them."""
    k = min(max(1, round(n_blocks * val_fraction)), n_blocks - 1)
    return sorted({int((j + 0.5) * n_blocks / k) for j in range(k)})


def _assign(pos: np.ndarray, n_blocks: int, vals: set[int], guard: float) -> list[str | None]:
    """pos in [0, n_blocks): block = floor(pos); None inside a guard band around a train/val boundary."""
    out: list[str | None] = []
    for p in pos:
        b = min(int(p), n_blocks - 1)
        split = "val" if b in vals else "train"
        frac = p - b
        near_prev = b > 0 and frac < guard and ((b - 1) in vals) != (b in vals)
        near_next = b < n_blocks - 1 and 1 - frac < guard and ((b + 1) in vals) != (b in vals)
        out.append(None if (near_prev or near_next) else split)
    return out


def _both(splits: list[str | None]) -> bool:
    return "train" in splits and "val" in splits


def split_by_time(
    cutout_frames: Sequence[int], real_frames: Sequence[int], n_blocks: int, val_fraction: float,
    generated_frames: Sequence[int] = (),
) -> SplitResult:
    """The time range, blocks and fallbacks are found from the real cutouts and frames alone (generated
    persons only inherit them), so adding generated persons never moves a real item to the other side."""
    gen = np.asarray(generated_frames, np.float64)
    vals = val_blocks(n_blocks, val_fraction)
    vset = set(vals)
    cut = np.asarray(cutout_frames, np.float64)
    real = np.asarray(real_frames, np.float64)
    everything = np.concatenate([cut, real])
    lo, hi = float(everything.min()), float(everything.max()) + 1.0

    def pos_time(f: np.ndarray) -> np.ndarray:
        return (f - lo) / (hi - lo) * n_blocks

    for guard in (GUARD_FRACTION, 0.0):
        c = _assign(pos_time(cut), n_blocks, vset, guard)
        if _both(c):
            return SplitResult(c, _assign(pos_time(real), n_blocks, vset, guard), "time", vals,
                               _assign(pos_time(np.clip(gen, lo, hi - 1e-6)), n_blocks, vset, guard))

    # People came in bursts (all cutouts in a few blocks): cut by rank of the distinct cutout frames instead,
    # which still keeps each source frame, and runs of neighbouring frames, on one side.
    uniq = np.unique(cut)
    if len(uniq) >= 2:

        def pos_rank(f: np.ndarray) -> np.ndarray:
            rank = np.minimum(np.searchsorted(uniq, f), len(uniq) - 1)
            return (rank + 0.5) / len(uniq) * n_blocks

        c = _assign(pos_rank(cut), n_blocks, vset, 0.0)
        if _both(c):
            return SplitResult(c, _assign(pos_rank(real), n_blocks, vset, 0.0), "rank", vals,
                               _assign(pos_rank(gen), n_blocks, vset, 0.0))
        # Too few distinct frames for the blocks: the last frames go to val.
        n_val = min(max(1, round(len(uniq) * val_fraction)), len(uniq) - 1)
        first_val = uniq[len(uniq) - n_val]
        c = ["val" if f >= first_val else "train" for f in cut]
        return SplitResult(c, ["val" if f >= first_val else "train" for f in real], "rank", vals,
                           ["val" if f >= first_val else "train" for f in gen])

    # Every cutout from one frame: they are still different people, so split them by index.
    n_val = min(max(1, round(len(cut) * val_fraction)), len(cut) - 1)
    c = ["val" if i >= len(cut) - n_val else "train" for i in range(len(cut))]
    # Generated persons carry no more time information than their silhouettes: split them by index too.
    n_gen_val = min(max(1, round(len(gen) * val_fraction)), len(gen) - 1) if len(gen) > 1 else 0
    g: list[str | None] = ["val" if i >= len(gen) - n_gen_val else "train" for i in range(len(gen))]
    return SplitResult(c, ["train"] * len(real), "index", vals, g)
