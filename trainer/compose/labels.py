"""Label boxes from what is actually visible: the effective alpha of each pasted person, minus the frame
border and minus the persons pasted after it (nearer, on top).

A box drawn around the whole cutout would label legs hidden behind someone else or a body outside the frame;
the detector would then learn to hallucinate them. Persons too hidden to be fair to the detector are not
pasted at all (select_visible before blending), so no unlabelled person pixels end up in an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA_ON = 0.5  # a pixel belongs to a person where its effective alpha is above this


@dataclass(frozen=True)
class Layer:
    """One pasted person: alpha (h, w) float32 in 0..1 whose top-left is at (x, y) in the frame."""

    x: int
    y: int
    alpha: np.ndarray


@dataclass(frozen=True)
class Visibility:
    box: tuple[int, int, int, int] | None  # xyxy pixel edges of the visible part, None when nothing shows
    visible_fraction: float  # visible pixels / all the person's pixels (including those off-frame)
    visible_px: int


def visibility(layers: Sequence[Layer], frame_w: int, frame_h: int) -> list[Visibility]:
    """Per layer (in paste order, later on top): its visible box and fraction."""
    covered = np.zeros((frame_h, frame_w), bool)
    out: list[Visibility] = []
    for layer in reversed(layers):  # nearest first: what it covers is hidden for everyone before it
        mask = layer.alpha > ALPHA_ON
        total = int(mask.sum())
        h, w = mask.shape
        x1, y1 = max(layer.x, 0), max(layer.y, 0)
        x2, y2 = min(layer.x + w, frame_w), min(layer.y + h, frame_h)
        if total == 0 or x2 <= x1 or y2 <= y1:
            out.append(Visibility(None, 0.0, 0))
            continue
        m = mask[y1 - layer.y : y2 - layer.y, x1 - layer.x : x2 - layer.x]
        roi = covered[y1:y2, x1:x2]
        vis = m & ~roi
        roi |= m
        n = int(vis.sum())
        if n == 0:
            out.append(Visibility(None, 0.0, 0))
            continue
        rows = np.flatnonzero(vis.any(axis=1))
        cols = np.flatnonzero(vis.any(axis=0))
        box = (x1 + int(cols[0]), y1 + int(rows[0]), x1 + int(cols[-1]) + 1, y1 + int(rows[-1]) + 1)
        out.append(Visibility(box, n / total, n))
    return out[::-1]


def big_enough(v: Visibility, min_box_px: int) -> bool:
    return v.box is not None and v.box[2] - v.box[0] >= min_box_px and v.box[3] - v.box[1] >= min_box_px


def select_visible(vis: Sequence[Visibility], min_visible_fraction: float, min_box_px: int) -> list[bool]:
    """Who is worth pasting: enough of the person shows and the visible box is not a speck.

    Dropping a person only uncovers the ones behind it, so one pass is conservative: everyone kept is at
    least as visible as computed here.
    """
    return [v.visible_fraction >= min_visible_fraction and big_enough(v, min_box_px) for v in vis]
