"""The default real check: the COCO YOLOv8n TFLite model on real thermal CCTV frames with real labels, and
real no-person frames (the camera's empty-scene plates). Small on purpose (20 + 20 frames)."""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import coco_stats

from bench.cli import main
from bench.schema import load_results
from edge.backends import available_backends, spec_from_tflite
from edge.detector import Detector
from edge.eval import load_yolo_folder, person_only
from edge.eval.coco import evaluate_detections

pytestmark = pytest.mark.real
MODEL = "coco-yolov8n-640-int8w.tflite"


@pytest.fixture(scope="module")
def thermal(shared_data):
    if available_backends()["litert"] is not None:
        pytest.skip("needs ai-edge-litert")
    return shared_data


def test_bench_run_on_thermal_harbour(thermal, tmp_path):
    out = tmp_path / "out"
    rc = main(["run", "--models", str(thermal / "models" / MODEL), "--metadata",
               str(thermal / "models" / "coco-names-metadata.yaml"), "--labels", str(thermal / "thermal-harbour"),
               "--negatives", str(thermal / "thermal-harbour" / "backgrounds"), "--max-frames", "20",
               "--frames", "5", "--threads", "2", "--no-progress", "--no-plots", "--out", str(out)])
    doc = load_results(out)
    (cell,) = doc["cells"]
    assert rc == 0 and cell["status"] == "ok", cell.get("reason")
    assert doc["data"]["frames"] == 20 and doc["data"]["negative_frames"] == 20
    assert doc["data"]["frames_with_person"] >= 15
    # A correct decoder on small thermal people: far from 0 (a broken one) and from 1 (a leak); measured
    # 0.65 mAP50 / 0.88 presence F1 on 40 + 40 frames.
    assert 0.35 < cell["map50"] < 0.95 and cell["map50_95"] < cell["map50"]
    assert cell["presence_f1"] > 0.7 and cell["box_precision"] > 0.8
    assert cell["temp_start_c"] is None or cell["temp_start_c"] > 0  # absent on x86: None, never 0


def test_real_predictions_map_agrees_with_pycocotools(thermal):
    pytest.importorskip("pycocotools")
    data = load_yolo_folder(thermal / "thermal-harbour", max_frames=12)
    path = thermal / "models" / MODEL
    spec = spec_from_tflite(path, thermal / "models" / "coco-names-metadata.yaml")
    det = Detector(spec, path, threads=2, conf=0.001, classes=[spec.person_class])
    preds = [person_only(det.detect(f), spec.person_class) for f in data.frames]
    ours = evaluate_detections(preds, data.gts, class_ids=[0])
    stats = coco_stats(preds, data.gts)
    assert sum(len(p) for p in preds) > 50 and np.isfinite(stats[:2]).all()
    assert abs(ours["map50"] - stats[1]) < 0.005 and abs(ours["map50_95"] - stats[0]) < 0.005
