"""edge/eval's scores on hand-computed cases: the figures every tool reports, with one set of keys."""

from __future__ import annotations

import numpy as np
import pytest

from edge.eval import EVAL_CONF, LabelledSet, detector_accuracy, score_classifier, score_detections
from edge.types import Detections

GT = np.array([[10, 10, 50, 90], [100, 20, 140, 100]], np.float32)
EMPTY = (np.zeros(0, np.int64), np.zeros((0, 4), np.float32))


def person(n: int, boxes: np.ndarray = GT) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n, np.int64), boxes[:n]


def dets(boxes, scores) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(b, scores, np.zeros(len(b), np.int64))


def test_box_scores_count_and_presence_at_the_threshold():
    far = [300, 300, 340, 380]
    preds = [
        dets([GT[0], GT[1], far], [0.9, 0.2, 0.6]),  # frame 1: one hit at conf, one hit below it, a false alarm
        dets([GT[0]], [0.8]),  # frame 2: one person, found
        Detections.empty(),  # frame 3: one person, missed
    ]
    gts = [person(2), person(1), person(1)]
    r = score_detections(preds, gts, conf=0.25, negatives=[dets([far], [0.7]), Detections.empty()])
    # at conf 0.25: TP 2 (0.9, 0.8), FP 1 (0.6); 4 persons -> P 2/3, R 1/2, F1 4/7
    assert r["box_precision"] == pytest.approx(2 / 3) and r["box_recall"] == pytest.approx(0.5)
    assert r["box_f1"] == pytest.approx(4 / 7)
    # counts at conf: [2, 1, 0] against [2, 1, 1] -> MAE 1/3
    assert r["count_mae"] == pytest.approx(1 / 3)
    # presence on 3 labelled + 2 person-free frames: said yes on frames 1, 2 and negative 1
    assert r["presence_counts"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert r["presence_f1"] == pytest.approx(2 / 3) and r["presence_frames"] == 5
    assert r["eval_frames"] == 3 and r["n_gt"] == 4
    # false alarms: 1 of the 2 person-free frames has a box at conf; per hour analysed at 5 frames/s
    assert r["negative_frames"] == 2 and r["false_alarm_rate"] == 0.5 and r["false_alarms_per_hour"] == 9000
    assert score_detections(preds, gts, conf=0.8, negatives=[dets([far], [0.7])])["false_alarm_rate"] == 0.0
    assert score_detections(preds, gts)["false_alarms_per_hour"] is None  # no person-free frame: no rate
    # mAP uses the whole curve: the 0.2 hit counts there (AP50 above what a cut at conf gives)
    cut = score_detections([p.filter(p.scores >= 0.25) for p in preds], gts, conf=0.25)
    assert r["map50"] > cut["map50"] and cut["box_precision"] == r["box_precision"]


def test_perfect_and_empty_sets():
    r = score_detections([dets(GT, [0.9, 0.8])], [person(2)], conf=0.25)
    assert (r["map50"], r["map50_95"], r["box_f1"], r["count_mae"], r["presence_f1"]) == (1.0, 1.0, 1.0, 0.0, 1.0)
    nothing = score_detections([Detections.empty()], [EMPTY], conf=0.25)
    assert nothing["map50"] == 0.0 and nothing["count_mae"] == 0.0 and nothing["presence_accuracy"] == 1.0


def test_classifier_scores_use_the_same_presence_keys():
    r = score_classifier([True, True, False, False], [True, False, True, False])
    assert r["presence_accuracy"] == 0.5 and r["presence_f1"] == 0.5 and r["eval_frames"] == 4


def test_detector_accuracy_runs_each_frame_and_negative_once():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    data = LabelledSet(frames, [person(1)] * 3, ["a", "b", "c"], negatives=[np.zeros((4, 4, 3), np.uint8)])
    seen: list[int] = []

    def predict(f: np.ndarray) -> Detections:
        seen.append(int(f[0, 0, 0]))
        return dets([GT[0]], [0.9]) if f.any() else Detections.empty()

    r = detector_accuracy(predict, data, conf=0.25)
    assert seen == [0, 1, 2, 0] and r["box_recall"] == pytest.approx(2 / 3) and r["presence_frames"] == 4
    assert EVAL_CONF <= 0.001  # the curve starts where Ultralytics' val starts
