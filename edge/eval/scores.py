"""The one set of accuracy figures every part of cctvkit reports, with one set of key names.

Detectors: COCO mAP50 and mAP50-95 over the whole score curve (the detections must come from a low
threshold, EVAL_CONF, as Ultralytics' val and pycocotools assume; a curve cut at the operating threshold
would lose its tail and score lower), then at the operating threshold `conf`: box precision, recall and F1
at IoU 0.5, person-count MAE per frame (the measure crowd-counting studies use) and presence (is there
anyone in the frame). Classifiers: presence only. `bench run`, `trainer export` verification, the demo's
bench stage and `trainer experiment` all call these functions, so one model gets one score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.eval.coco import GroundTruth, evaluate_detections
from edge.types import Detections

# Detections below this never reach the score: the same floor as Ultralytics' val.
EVAL_CONF = 0.001

DETECTION_KEYS = ("map50", "map50_95", "box_precision", "box_recall", "box_f1", "count_mae")
PRESENCE_KEYS = ("presence_accuracy", "presence_precision", "presence_recall", "presence_f1")


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def presence_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Frame-level "is there a person" scores, keyed presence_*; every ratio is 0.0 when its denominator
    is 0 (so an all-negative set gives F1 0.0 and accuracy 1.0 for a model that says no everywhere)."""
    p = np.asarray(pred, bool).reshape(-1)
    t = np.asarray(truth, bool).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions for {t.size} truth values")
    tp, fp = int((p & t).sum()), int((p & ~t).sum())
    fn, tn = int((~p & t).sum()), int((~p & ~t).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "presence_accuracy": _ratio(tp + tn, p.size),
        "presence_precision": precision,
        "presence_recall": recall,
        "presence_f1": _ratio(2 * precision * recall, precision + recall),
        "presence_counts": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "presence_frames": int(p.size),
    }


def score_detections(
    preds: Sequence[Detections],
    gts: Sequence[GroundTruth],
    *,
    conf: float = 0.25,
    negatives: Sequence[Detections] = (),
) -> dict[str, Any]:
    """Person detections (class 0, from a threshold <= EVAL_CONF) against person ground truth, one entry
    per labelled frame; `negatives` are the detections on person-free frames, counted in presence only."""
    acc = evaluate_detections(preds, gts, class_ids=[0], conf=conf)
    precision, recall = float(acc["precision"]), float(acc["recall"])
    counts = np.array([int((p.scores >= conf).sum()) for p in preds], np.int64)
    truth_counts = np.array([len(c) for c, _ in gts], np.int64)
    present = np.concatenate([counts > 0, [bool((n.scores >= conf).any()) for n in negatives]]).astype(bool)
    truth = np.concatenate([truth_counts > 0, np.zeros(len(negatives), bool)])
    return {
        "map50": float(acc["map50"]),
        "map50_95": float(acc["map50_95"]),
        "box_precision": precision,
        "box_recall": recall,
        "box_f1": _ratio(2 * precision * recall, precision + recall),
        "count_mae": float(np.abs(counts - truth_counts).mean()) if len(counts) else 0.0,
        "eval_frames": len(preds),
        "n_gt": int(truth_counts.sum()),
        **presence_metrics(present, truth),
        **false_alarms(negatives, conf),
    }


ALARM_FPS = 5.0  # frames analysed per second when a rate per hour is quoted: Frigate's default detect fps


def false_alarms(negatives: Sequence[Detections], conf: float) -> dict[str, Any]:
    """On person-free frames: the share with any box at conf (each one a false "person" alarm), and that
    rate per hour of person-free footage analysed at ALARM_FPS. None without person-free frames."""
    if not len(negatives):
        return {"negative_frames": 0, "false_alarm_rate": None, "false_alarms_per_hour": None}
    rate = float(np.mean([bool((n.scores >= conf).any()) for n in negatives]))
    return {"negative_frames": len(negatives), "false_alarm_rate": rate,
            "false_alarms_per_hour": rate * ALARM_FPS * 3600}


def score_classifier(verdicts: Sequence[bool] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Person / no-person verdicts against frame truth (labelled frames then person-free frames)."""
    return {"eval_frames": int(np.asarray(truth).size), **presence_metrics(np.asarray(verdicts), np.asarray(truth))}
