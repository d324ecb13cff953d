"""COCO-style mAP: hand-made cases with known answers and agreement with pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from edge.eval import presence_metrics
from edge.eval.coco import evaluate_detections
from edge.types import Detections

GT_BOXES = np.array([[10, 10, 50, 90], [100, 20, 140, 100]], np.float32)


def gt(boxes=GT_BOXES, cls=None):
    return (np.zeros(len(boxes), np.int64) if cls is None else np.asarray(cls), np.asarray(boxes))


def dets(boxes, scores, cls=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(boxes, scores, np.zeros(len(boxes), np.int64) if cls is None else cls)


def test_perfect_predictions():
    r = evaluate_detections([dets(GT_BOXES, [0.9, 0.8])], [gt()])
    assert r["map50"] == pytest.approx(1.0) and r["map50_95"] == pytest.approx(1.0)
    assert r["precision"] == 1.0 and r["recall"] == 1.0
    assert (r["n_images"], r["n_gt"], r["n_pred"]) == (1, 2, 2)


def test_false_positive_ranked_first():
    """FP at 0.95, then both TPs: precision after each TP is 1/2 and 2/3; the monotone envelope is 2/3 at
    every recall point, so AP = 2/3 (101-point interpolation)."""
    boxes = np.vstack([[300, 300, 340, 380], GT_BOXES])
    r = evaluate_detections([dets(boxes, [0.95, 0.9, 0.8])], [gt()])
    assert r["map50"] == pytest.approx(2 / 3)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0
    # Ranked last instead, the FP costs nothing.
    r = evaluate_detections([dets(boxes, [0.1, 0.9, 0.8])], [gt()])
    assert r["map50"] == pytest.approx(1.0)


def test_one_missed_object():
    r = evaluate_detections([dets(GT_BOXES[:1], [0.9])], [gt()])
    assert r["recall"] == pytest.approx(0.5) and r["precision"] == 1.0
    assert r["map50"] == pytest.approx(51 / 101)  # precision 1 at recall points 0.00..0.50


def test_empty_predictions_and_operating_threshold():
    r = evaluate_detections([Detections.empty()], [gt()])
    assert r["map50"] == 0.0 and r["map50_95"] == 0.0 and r["precision"] == 0.0 and r["recall"] == 0.0
    # Perfect boxes but below the operating conf: AP unaffected, P/R at conf are 0.
    r = evaluate_detections([dets(GT_BOXES, [0.2, 0.1])], [gt()], conf=0.25)
    assert r["map50"] == pytest.approx(1.0) and r["recall"] == 0.0 and r["n_pred_at_conf"] == 0


def test_iou_thresholds_and_duplicates():
    # IoU 0.82 with the box: a TP at 0.50..0.80 (7 of 10 thresholds), a miss above.
    box = GT_BOXES[0]
    h = box[3] - box[1]
    d = h * (1 - 0.82) / (1 + 0.82)  # shifting down by d leaves IoU (h - d) / (h + d)
    shifted = box + np.array([0, d, 0, d])
    r = evaluate_detections([dets(shifted, [0.9])], [gt(GT_BOXES[:1])])
    assert r["map50"] == pytest.approx(1.0) and r["map50_95"] == pytest.approx(0.7)
    # A duplicate of a matched box is a false positive.
    r = evaluate_detections([dets([box, box], [0.9, 0.8])], [gt(GT_BOXES[:1])])
    assert r["precision"] == pytest.approx(0.5) and r["map50"] == pytest.approx(1.0)


def test_classes_are_separate_and_filterable():
    g = gt(GT_BOXES, [0, 1])
    p = dets(GT_BOXES, [0.9, 0.8], np.array([0, 0]))  # the second box has the wrong class
    r = evaluate_detections([p], [g])
    assert r["per_class"][0]["ap50"] == pytest.approx(1.0) and r["per_class"][1]["ap50"] == 0.0
    assert r["map50"] == pytest.approx(0.5)
    r = evaluate_detections([p], [g], class_ids=[0])
    assert r["map50"] == pytest.approx(1.0) and r["n_gt"] == 1 and r["n_pred"] == 2
    with pytest.raises(ValueError):
        evaluate_detections([p, p], [g])


def random_set(seed: int, n_images: int = 40, n_classes: int = 3):
    """Ground truth and noisy predictions: jittered hits, misses, wrong classes and stray boxes."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        n = int(rng.integers(0, 7))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(8, 140, (n, 2))
        boxes = np.hstack([xy, xy + wh])
        cls = rng.integers(0, n_classes, n)
        gts.append((cls, boxes))
        pb, ps, pc = [], [], []
        for b, c in zip(boxes, cls, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # 0 = miss, 2 = duplicate
                pb.append(b + rng.normal(0, 6, 4))
                pc.append(c if rng.uniform() < 0.9 else int(rng.integers(0, n_classes)))
                ps.append(rng.uniform(0.05, 1.0))
        for _ in range(int(rng.integers(0, 4))):
            xy0 = rng.uniform(0, 500, 2)
            pb.append(np.r_[xy0, xy0 + rng.uniform(8, 140, 2)])
            pc.append(int(rng.integers(0, n_classes)))
            ps.append(rng.uniform(0.0, 0.7))
        pb_arr = np.asarray(pb, np.float32).reshape(-1, 4)
        pb_arr[:, 2:] = np.maximum(pb_arr[:, 2:], pb_arr[:, :2] + 1)
        preds.append(Detections(pb_arr, np.asarray(ps), np.asarray(pc)))
    return preds, gts


def coco_eval(preds, gts):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images = [{"id": i + 1, "width": 700, "height": 700} for i in range(len(gts))]
    anns = []
    for i, (cls, boxes) in enumerate(gts):
        for c, b in zip(cls, boxes, strict=True):
            bb = xywh(b)
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "bbox": bb,
                 "area": bb[2] * bb[3], "iscrowd": 0}
            )  # fmt: skip
    cats = [{"id": c + 1, "name": str(c)} for c in range(3)]
    results = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
        for i, p in enumerate(preds)
        for b, s, c in zip(p.xyxy, p.scores, p.class_ids, strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pycocotools(seed):
    pytest.importorskip("pycocotools")
    preds, gts = random_set(seed)
    if seed == 2:  # more than maxDets (100) detections of one class in one image: both cut to the top 100
        rng = np.random.default_rng(9)
        extra = np.hstack([xy := rng.uniform(0, 500, (150, 2)), xy + rng.uniform(8, 140, (150, 2))])
        p0 = preds[0]
        preds[0] = Detections(
            np.vstack([p0.xyxy, extra]),
            np.r_[p0.scores, rng.uniform(0, 1, 150)],
            np.r_[p0.class_ids, np.zeros(150, np.int64)],
        )
    ours = evaluate_detections(preds, gts)
    stats = coco_eval(preds, gts)
    assert 0.2 < ours["map50"] < 0.95  # a set that actually exercises the ranking
    # Same rules, so agreement is exact up to float noise (well inside the 0.005 asked for).
    assert ours["map50_95"] == pytest.approx(stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(stats[1], abs=1e-6)


def test_presence_metrics():
    pred = np.array([1, 1, 0, 0, 1, 0], bool)
    truth = np.array([1, 0, 1, 0, 1, 0], bool)
    r = presence_metrics(pred, truth)
    c = r["presence_counts"]
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 2)
    assert r["presence_accuracy"] == pytest.approx(4 / 6)
    assert r["presence_precision"] == pytest.approx(2 / 3) and r["presence_recall"] == pytest.approx(2 / 3)
    assert r["presence_f1"] == pytest.approx(2 / 3)
    z = presence_metrics(np.zeros(3, bool), np.zeros(3, bool))
    assert z["presence_precision"] == 0.0 and z["presence_recall"] == 0.0 and z["presence_f1"] == 0.0
    assert z["presence_accuracy"] == 1.0
    e = presence_metrics(np.zeros(0, bool), np.zeros(0, bool))
    assert e["presence_accuracy"] == 0.0
    with pytest.raises(ValueError):
        presence_metrics(np.zeros(2, bool), np.zeros(3, bool))
