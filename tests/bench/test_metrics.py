"""The numbers `bench run` reports: mAP as bench computes it (person only, no-person frames included,
other classes of a COCO model dropped) against pycocotools; presence metrics and the verdict on hand cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from bench.verdict import budget_table, pareto_front, summary_lines
from edge.eval import person_only, presence_metrics
from edge.eval.coco import evaluate_detections
from edge.types import Detections


def coco_stats(preds: list[Detections], gts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """pycocotools' COCOeval (bbox, area all, maxDets 100) on person-only boxes; every image counts,
    including those without ground truth (their detections are false positives)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns = []
    for i, (_, boxes) in enumerate(gts):
        for b in boxes:
            bb = xywh(b)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": bb,
                         "area": bb[2] * bb[3], "iscrowd": 0})
    results = [{"image_id": i + 1, "category_id": 1, "bbox": xywh(b), "score": float(s)}
               for i, p in enumerate(preds) for b, s in zip(p.xyxy, p.scores, strict=True)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i + 1, "width": 768, "height": 576} for i in range(len(gts))],
                        "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results) if results else COCO(), "bbox")
        ev.params.imgIds = list(range(1, len(gts) + 1))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def cctv_set(seed: int, n_images: int = 60):
    """CCTV-like frames: small upright people (some frames empty), a COCO model's output with person = 0
    and a few other classes, jittered hits, misses, duplicates and low-score clutter."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        n = 0 if rng.uniform() < 0.3 else int(rng.integers(1, 6))
        h = rng.uniform(18, 160, n)
        w = h * rng.uniform(0.3, 0.5, n)
        x, y = rng.uniform(0, 700, n), rng.uniform(0, 400, n)
        boxes = np.stack([x, y, x + w, y + h], axis=1) if n else np.zeros((0, 4))
        gts.append((np.zeros(n, np.int64), boxes))
        pb, ps, pc = [], [], []
        for b, bh in zip(boxes, h, strict=True):
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                pb.append(b + rng.normal(0, 0.06 * bh, 4))
                ps.append(rng.beta(5, 2))
                pc.append(0)
        for _ in range(int(rng.integers(0, 5))):  # clutter, some of it other COCO classes (car = 2, dog = 16)
            xy = rng.uniform(0, 700, 2)
            pb.append(np.r_[xy, xy + rng.uniform(10, 90, 2)])
            ps.append(rng.beta(1.5, 5))
            pc.append(int(rng.choice([0, 0, 2, 16])))
        arr = np.asarray(pb, np.float32).reshape(-1, 4)
        arr[:, 2:] = np.maximum(arr[:, 2:], arr[:, :2] + 1)
        preds.append(Detections(arr, np.asarray(ps), np.asarray(pc)))
    return preds, gts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bench_map_agrees_with_pycocotools(seed):
    pytest.importorskip("pycocotools")
    raw, gts = cctv_set(seed)
    persons = [person_only(p, 0) for p in raw]
    ours = evaluate_detections(persons, gts, class_ids=[0], conf=0.25)
    stats = coco_stats(persons, gts)
    assert 0.2 < ours["map50"] < 0.98, "the set must exercise the ranking, or agreement proves little"
    assert abs(ours["map50"] - stats[1]) < 0.005 and abs(ours["map50_95"] - stats[0]) < 0.005
    # Dropping the other classes is what bench does; keeping them would count cars as false persons.
    assert evaluate_detections(raw, gts, class_ids=[0])["map50"] == pytest.approx(ours["map50"])


def test_hand_cases_against_pycocotools():
    pytest.importorskip("pycocotools")
    gt_boxes = np.array([[10, 10, 50, 90], [100, 20, 140, 100]], np.float32)
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    cases = [
        # perfect on the person frame, silent on the empty frame: AP 1
        ([Detections(gt_boxes, [0.9, 0.8], [0, 0]), Detections.empty()], 1.0),
        # a confident false alarm on the empty frame ranks first: precision 1/2, 2/3 -> AP 2/3
        ([Detections(gt_boxes, [0.9, 0.8], [0, 0]), Detections([[5, 5, 30, 60]], [0.95], [0])], 2 / 3),
        # one person missed: precision 1 up to recall 0.5 -> 51/101
        ([Detections(gt_boxes[:1], [0.9], [0]), Detections.empty()], 51 / 101),
    ]
    gts = [(np.zeros(2, np.int64), gt_boxes), empty]
    for preds, expected in cases:
        ours = evaluate_detections(preds, gts, class_ids=[0])
        stats = coco_stats(preds, gts)
        assert ours["map50"] == pytest.approx(expected, abs=1e-9)
        assert abs(stats[1] - expected) < 0.005 and abs(ours["map50_95"] - stats[0]) < 0.005


def test_precision_recall_at_the_operating_threshold():
    gt_boxes = np.array([[10, 10, 50, 90], [100, 20, 140, 100]], np.float32)
    preds = [Detections(np.vstack([gt_boxes, [[300, 300, 340, 380]]]), [0.9, 0.2, 0.6], [0, 0, 0])]
    r = evaluate_detections(preds, [(np.zeros(2, np.int64), gt_boxes)], class_ids=[0], conf=0.25)
    # at conf 0.25: one hit (0.9) and one false alarm (0.6); the 0.2 hit is below the threshold
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.5)


@pytest.mark.parametrize("pred, truth, expect", [
    ([1, 1, 1, 1], [1, 1, 0, 0], {"accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}),
    ([0, 0, 0, 0], [1, 1, 0, 0], {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0}),
    ([1, 0, 0, 1], [1, 1, 0, 0], {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}),
    ([1, 1, 0, 0, 0], [1, 1, 0, 0, 1], {"accuracy": 0.8, "precision": 1.0, "recall": 2 / 3, "f1": 0.8}),
    ([0, 0], [0, 0], {"accuracy": 1.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}),
])
def test_presence_hand_cases(pred, truth, expect):
    r = presence_metrics(np.array(pred, bool), np.array(truth, bool))
    for k, v in expect.items():
        assert r[f"presence_{k}"] == pytest.approx(v), k


def _cell(cid: str, task: str, fps: float, f1: float, status: str = "ok") -> dict:
    return {"id": cid, "task": task, "status": status, "fps_sustained": fps, "presence_f1": f1}


def test_verdict_budgets_and_pareto():
    cells = [
        _cell("det-big", "detect", 4.0, 0.95),
        _cell("det-small", "detect", 12.0, 0.90),
        _cell("det-slow-bad", "detect", 3.0, 0.80),  # dominated by both detectors
        _cell("cls", "classify", 40.0, 0.85),
        _cell("cls-broken", "classify", 99.0, 0.99, status="failed"),  # failed cells never count
    ]
    assert pareto_front(cells) == ["det-big", "det-small", "cls"]
    table = {r["budget_fps"]: r for r in budget_table(cells)}
    assert table[1.0]["winner"] == "detector" and table[1.0]["detector"]["id"] == "det-big"
    assert table[10.0]["detector"]["id"] == "det-small" and table[10.0]["winner"] == "detector"
    assert table[15.0]["detector"] is None and table[15.0]["winner"] == "classifier"
    assert table[60.0]["winner"] is None and max(table) == 60.0  # the table stops at the first empty budget
    lines = summary_lines(cells, budget_table(cells))
    assert "budget 1-10 FPS: the detector wins (det-small)" not in lines  # det-big is best up to 2 FPS
    assert "budget 1-2 FPS: the detector wins (det-big)" in lines
    assert "budget 5-10 FPS: the detector wins (det-small)" in lines
    assert "budget 15-30 FPS: the classifier wins (cls)" in lines
    sharp, blurry = _cell("sharp", "detect", 20, 0.9), _cell("blurry", "detect", 50, 0.9)
    sharp["map50_95"], blurry["map50_95"] = 0.40, 0.25  # same presence F1: box accuracy decides, not speed
    assert budget_table([sharp, blurry])[0]["detector"]["id"] == "sharp"
    tie = budget_table([_cell("d", "detect", 10, 0.9), _cell("c", "classify", 10, 0.9)])
    assert tie[0]["winner"] == "tie"
