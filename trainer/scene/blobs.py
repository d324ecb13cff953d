"""Geometry on foreground masks and boxes: overlap measures, NMS, and the ways one blob is cut into people."""

from __future__ import annotations

import cv2
import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def nms(boxes: list[np.ndarray], scores: list[float], iou: float) -> list[int]:
    # Ties broken by position so the result never depends on the order OpenCV's threads returned hits in.
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], *boxes[i].tolist()))
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i], boxes[j]) <= iou for j in keep):
            keep.append(i)
    return keep


def split_side_by_side(gmask: np.ndarray, person_w: float) -> list[np.ndarray]:
    """k people side by side, cut at the emptiest columns near the even split points. Legs apart make
    one walker wide at the bottom only; two people are wide at head and shoulders too."""
    gw = gmask.shape[1]
    upper = upper_width(gmask)
    if gw < 1.55 * person_w or upper < 1.3 * person_w:
        return [gmask]
    k = max(2, int(round(upper / person_w)))
    cols = gmask.sum(axis=0).astype(np.float64)
    cuts = []
    for j in range(1, k):
        centre = j * gw / k
        lo, hi = int(max(1, centre - 0.3 * person_w)), int(min(gw - 1, centre + 0.3 * person_w))
        cuts.append(lo + int(np.argmin(cols[lo:hi])) if hi > lo else int(centre))
    edges = [0, *cuts, gw]
    parts = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = np.zeros_like(gmask)
        m[:, a:b] = gmask[:, a:b]
        if m.any():
            parts.append(largest_component(m))
    return parts


def upper_width(m: np.ndarray) -> float:
    """Width of the head-and-shoulders part (top 45% of rows), ignoring stray columns."""
    top = m[: max(1, int(0.45 * m.shape[0]))]
    xs = np.nonzero(top)[1]
    if len(xs) == 0:
        return 0.0
    lo, hi = np.percentile(xs, [3, 97])
    return float(hi - lo + 1)


def inside(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of box a's area that lies inside box b."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih / max((a[2] - a[0]) * (a[3] - a[1]), 1e-6))


def same_body(a: np.ndarray, b: np.ndarray, stacked: bool, wide: bool) -> bool:
    w = min(a[2] - a[0], b[2] - b[0])
    h = min(a[3] - a[1], b[3] - b[1])
    dx = abs((a[0] + a[2]) - (b[0] + b[2])) / 2
    dy = abs((a[1] + a[3]) - (b[1] + b[3])) / 2
    return dx < (0.4 if wide else 0.75) * w and (not stacked or dy < 0.25 * h)


def largest_component(m: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected piece plus pieces at least a quarter of its size (a split-off head)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    areas = stats[1:, 4]
    keep = 1 + np.nonzero(areas >= 0.25 * areas.max())[0]
    return np.isin(labels, keep)
