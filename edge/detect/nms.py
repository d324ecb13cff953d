"""Greedy non-maximum suppression in numpy, the same rule as torchvision.ops.nms (drop IoU > threshold)."""

from __future__ import annotations

import numpy as np


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box against (N, 4) boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float = 0.45, max_det: int = 300) -> np.ndarray:
    """Indices of kept boxes, best first. One Python iteration per *kept* box, vectorised over the rest,
    so the cost follows the number of objects, not the number of candidates."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    boxes = np.asarray(xyxy, dtype=np.float64)  # float64: class-shifted coordinates stay exact
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = inter > iou * union  # IoU > iou without dividing (union may be 0 for empty boxes)
        order = rest[~overlap]
    return np.asarray(keep, np.int64)


def batched_nms(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float = 0.45, max_det: int = 300
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Shifting each class into its
    own coordinate range does it in one pass (the trick Ultralytics and torchvision use)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    span = float(np.abs(xyxy).max()) + 1.0
    shifted = xyxy.astype(np.float64) + (class_ids.astype(np.float64) * 2 * span)[:, None]
    return nms(shifted, scores, iou, max_det)
