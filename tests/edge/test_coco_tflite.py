"""Real Ultralytics COCO exports (../shared/data/models) through spec_from_tflite + the litert backend.

Reference boxes for bus.jpg (810x1080) are the four people by eye: the man on the left, the man in the
middle, the man on the right and the half-visible person at the left edge; they agree with Ultralytics' own
predict on these models to within a few pixels. The full-int8 models see the same four; Ultralytics itself
counts a fifth (a duplicate of the edge person) because it truncates rather than rounds the int8 input and
uses NMS IoU 0.7 instead of our 0.45.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.backends import spec_from_tflite
from edge.detector import Detector
from edge.errors import CctvkitError
from edge.eval.coco import iou_matrix

INT8W = ["coco-yolov8n-640-int8w", "coco-yolo11n-640-int8w"]
FULL_INT8 = ["coco-yolov8n-640-full-int8", "coco-yolo11n-640-full-int8"]
BUS_PERSONS = np.array(
    [
        [50, 398, 245, 905],  # left
        [222, 406, 345, 860],  # middle
        [670, 385, 810, 878],  # right, cut by the frame edge
        [0, 550, 62, 870],  # left edge, half visible
    ],
    np.float32,
)
BUS_VEHICLE = np.array([14, 229, 799, 736], np.float32)
PERSON, BUS = 0, 5


def load(shared: Path, name: str, **kw) -> Detector:
    path = shared / "models" / f"{name}.tflite"
    spec = spec_from_tflite(path, shared / "models" / "coco-names-metadata.yaml")
    return Detector(spec, path, backend="litert", threads=2, **kw)


def bus(shared: Path) -> np.ndarray:
    img = cv2.imread(str(shared / "images" / "bus.jpg"))
    assert img is not None and img.shape == (1080, 810, 3)
    return img


@pytest.mark.parametrize("name", INT8W + FULL_INT8)
def test_spec_from_tflite(shared_data, name):
    spec = spec_from_tflite(shared_data / "models" / f"{name}.tflite")  # embedded Ultralytics metadata
    assert spec.task == "detect" and spec.format == "tflite" and spec.precision == "int8"
    assert spec.imgsz == (640, 640) and spec.layout == "NHWC" and spec.boxes_normalized
    assert len(spec.class_names) == 80 and spec.class_names[BUS] == "bus" and spec.person_class == 0
    if name in FULL_INT8:
        assert spec.input_dtype == "int8" and spec.input_quant is not None and spec.output_quant is not None
        assert 0 < spec.output_quant.scale < 0.01
    else:
        assert spec.input_dtype == "float32" and spec.input_quant is None and spec.output_quant is None


@pytest.mark.parametrize("name", INT8W + FULL_INT8)
def test_bus_people(shared_data, name):
    det = load(shared_data, name, conf=0.25, classes=[PERSON])
    dets = det.detect(bus(shared_data))
    assert set(dets.class_ids.tolist()) == {PERSON}
    # Ultralytics: 4 people with the int8w models, 5 with the full-int8 ones (see the module docstring).
    assert len(dets) == 4 if name in INT8W else len(dets) in (4, 5)
    w, h = dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1]
    assert (h > 1.5 * w).all() and (h > 250).all()  # standing people, not slivers
    assert (
        (dets.xyxy >= 0).all()
        and (dets.xyxy[:, [0, 2]] <= 810).all()
        and (dets.xyxy[:, [1, 3]] <= 1080).all()
    )
    iou = iou_matrix(BUS_PERSONS, dets.xyxy)
    assert (iou.max(axis=1) > 0.75).all(), iou.max(axis=1)  # every reference person found, boxes tight
    assert (dets.scores[np.argsort(-iou.max(axis=0))] > 0.25).all()
    assert det.timing.infer_ms > 0


@pytest.mark.parametrize("name", [INT8W[1], FULL_INT8[1]])
def test_bus_all_classes(shared_data, name):
    dets = load(shared_data, name).detect(bus(shared_data))
    buses = dets.xyxy[dets.class_ids == BUS]
    assert len(buses) == 1 and iou_matrix(BUS_VEHICLE, buses)[0, 0] > 0.9
    assert dets.scores[dets.class_ids == BUS][0] > 0.8
    assert (dets.class_ids == PERSON).sum() == 4


@pytest.mark.parametrize("name", [INT8W[0], FULL_INT8[1]])
def test_vtest_frame(shared_data, name):
    """PETS 2009 campus: pedestrians 30-90 px tall on a 768x576 frame."""
    cap = cv2.VideoCapture(str(shared_data / "vtest" / "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (576, 768, 3)
    dets = load(shared_data, name, classes=[PERSON]).detect(frame)
    assert 5 <= len(dets) <= 9
    w, h = dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1]
    assert (h > 1.3 * w).all() and (h > 25).all() and (h < 130).all()
    assert (dets.xyxy[:, [0, 2]] <= 768).all() and (dets.xyxy[:, [1, 3]] <= 576).all()
    assert iou_matrix(dets.xyxy, dets.xyxy)[~np.eye(len(dets), dtype=bool)].max() < 0.45  # after NMS


def test_spec_disagreeing_with_the_model_is_refused(shared_data):
    from dataclasses import replace

    path = shared_data / "models" / f"{FULL_INT8[0]}.tflite"
    spec = spec_from_tflite(path)
    with pytest.raises(CctvkitError, match="takes int8 input but the ModelSpec says float32"):
        Detector(replace(spec, input_dtype="float32", input_quant=None), path)
    with pytest.raises(CctvkitError, match="input quantisation"):
        Detector(replace(spec, input_quant=None), path)
    with pytest.raises(CctvkitError, match="output quantisation"):
        Detector(replace(spec, output_quant=None), path)
    with pytest.raises(CctvkitError, match="cannot read tflite"):
        Detector(spec, path, backend="onnxruntime")
