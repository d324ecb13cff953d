"""COCO-style detection AP without pycocotools: the mAP half of the one evaluation core (edge/eval).

The rules follow pycocotools' COCOeval for bounding boxes with areaRng "all" and maxDets 100: per image and
class the detections are sorted by score (stable) and cut to max_dets, each greedily takes the unmatched
ground truth with the highest IoU >= t; per class the matches of all images are ranked by score, precision
is made monotone and read at 101 recall points; AP is their mean. mAP is the mean over classes that have
ground truth (COCOeval leaves the others out). tests/edge checks agreement with COCOeval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.types import Detections

# Built exactly as COCOeval builds them, so float thresholds compare identically.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)

GroundTruth = tuple[np.ndarray, np.ndarray]  # (class_ids (G,), xyxy (G, 4)) of one image


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes a (N, 4) against b (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T, D) true-positive flags of score-sorted detections against one image's ground truth,
    at every IoU threshold at once (one Python step per detection that overlaps any ground truth)."""
    n_t, n_d = len(IOU_THRESHOLDS), len(det)
    tp = np.zeros((n_t, n_d), bool)
    if n_d == 0 or len(gt) == 0:
        return tp
    ious = iou_matrix(det, gt)
    matched = np.zeros((n_t, len(gt)), bool)
    rows = np.arange(n_t)
    for d in np.flatnonzero(ious.max(axis=1) >= IOU_THRESHOLDS[0]):
        cand = np.where(matched | (ious[d][None, :] < IOU_THRESHOLDS[:, None]), -1.0, ious[d][None, :])
        best = cand.argmax(axis=1)
        ok = cand[rows, best] >= 0
        tp[ok, d] = True
        matched[rows[ok], best[ok]] = True
    return tp


def _average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> np.ndarray:
    """(T,) 101-point interpolated AP from (T, N) match flags of all images' detections of one class."""
    if tp.shape[1] == 0:
        return np.zeros(tp.shape[0])
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[:, order], axis=1, dtype=np.float64)
    fps = np.cumsum(~tp[:, order], axis=1, dtype=np.float64)
    recall = tps / n_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # monotone from the right
    ap = np.zeros(tp.shape[0])
    for t in range(tp.shape[0]):
        idx = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        valid = idx < recall.shape[1]
        q = np.zeros(len(RECALL_POINTS))
        q[valid] = precision[t, idx[valid]]
        ap[t] = q.mean()
    return ap


def evaluate_detections(
    preds: Sequence[Detections],
    gts: Sequence[GroundTruth],
    class_ids: Sequence[int] | None = None,
    conf: float = 0.25,
    max_dets: int = 100,
) -> dict[str, Any]:
    """mAP50, mAP50-95 (COCO rules) and precision/recall at IoU 0.5 for detections with score >= conf,
    averaged over the classes (class_ids, or all classes with ground truth) that have ground truth.
    preds and gts hold one entry per image, boxes in the same pixel frame."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction sets for {len(gts)} images")
    gt_cls = [np.asarray(c, np.int64).reshape(-1) for c, _ in gts]
    gt_box = [np.asarray(b, np.float64).reshape(-1, 4) for _, b in gts]
    present = sorted({int(c) for cs in gt_cls for c in cs})
    wanted = present if class_ids is None else sorted({int(c) for c in class_ids})
    classes = [c for c in wanted if c in set(present)]

    per_class: dict[int, dict[str, float]] = {}
    for c in classes:
        tps, scores = [], []
        n_gt = 0
        n_tp_conf = n_conf = 0
        for p, gc, gb in zip(preds, gt_cls, gt_box, strict=True):
            sel = p.class_ids == c
            s = p.scores[sel]
            order = np.argsort(-s, kind="mergesort")[:max_dets]
            s = s[order]
            tp = _match(p.xyxy[sel][order], gb[gc == c])
            n_gt += int((gc == c).sum())
            at_conf = s >= conf
            n_conf += int(at_conf.sum())
            n_tp_conf += int(tp[0, at_conf].sum())
            tps.append(tp)
            scores.append(s)
        ap = _average_precision(np.concatenate(tps, axis=1), np.concatenate(scores), n_gt)
        per_class[c] = {
            "ap50": float(ap[0]),
            "ap50_95": float(ap.mean()),
            "precision": n_tp_conf / n_conf if n_conf else 0.0,
            "recall": n_tp_conf / n_gt,
            "n_gt": n_gt,
        }
    # Predictions of the classes asked for (all when none were named), whether or not they have ground truth.
    counted = [p if class_ids is None else p.filter(np.isin(p.class_ids, wanted)) for p in preds]
    n_pred = sum(len(p) for p in counted)
    n_pred_conf = sum(int((p.scores >= conf).sum()) for p in counted)

    def mean(key: str) -> float:
        return float(np.mean([v[key] for v in per_class.values()])) if per_class else 0.0

    return {
        "map50": mean("ap50"),
        "map50_95": mean("ap50_95"),
        "precision": mean("precision"),
        "recall": mean("recall"),
        "n_images": len(preds),
        "n_gt": int(sum(v["n_gt"] for v in per_class.values())),
        "n_pred": n_pred,
        "n_pred_at_conf": n_pred_conf,
        "conf": conf,
        "per_class": per_class,
    }
