"""Even spread: up to n of many, first and last included, so a sample covers the whole span (a video's
lighting drifts over a day; consecutive frames are near-duplicates). The one implementation behind the
scene's frame picks, its cutout and distractor caps, the evaluation's frame caps and export timing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def spread_indices(start: int, stop: int, n: int) -> list[int]:
    """Up to n indices evenly spread over [start, stop), ascending, without repeats; [] when n <= 0.

    The positions are rounded from np.linspace(start, stop - 1) itself, not offset from 0: round-half-even
    makes start + round(x) and round(start + x) differ on exact halves, and recorded frame picks must not move.
    """
    if stop <= start or n <= 0:
        return []
    if n >= stop - start:
        return list(range(start, stop))
    return sorted({int(v) for v in np.linspace(start, stop - 1, n).round()})


def spread(items: Sequence[T], n: int, *, zero_means_all: bool = False) -> list[T]:
    """Up to n items evenly spread over the sequence, in order. n <= 0 gives none, or all of them with
    zero_means_all: the evaluation's frame caps (max_frames=0) mean "no cap", a scene's item caps
    (max_cutouts=0, max_distractors=0) mean "none wanted"."""
    if n <= 0 and zero_means_all:
        return list(items)
    return [items[i] for i in spread_indices(0, len(items), n)]
