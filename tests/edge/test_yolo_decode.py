"""YOLOv8/YOLO11 head decoding end to end: a real ONNX model (fixed output) through the onnxruntime backend,
the Detector's letterbox and the decoder, checked against boxes computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edge.detect.decode import decode_probs, decode_yolov8
from edge.detect.nms import batched_nms, nms
from edge.detect.preprocess import Letterbox
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.types import ModelSpec, QuantParams

IMGSZ = (64, 64)
NC = 3
# A 160x120 frame letterboxes into 64x64 at scale 0.4 with 8 px of padding above and below.
FRAME = np.full((120, 160, 3), 90, np.uint8)


def to_frame(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1 / 0.4, (y1 - 8) / 0.4, x2 / 0.4, (y2 - 8) / 0.4]


def head(anchors: int = 21) -> np.ndarray:
    """(1, 4 + NC, A) head with hand-placed anchors; every other anchor is zero."""
    y = np.zeros((1, 4 + NC, anchors), np.float32)

    def put(a: int, box: tuple[float, float, float, float], scores: tuple[float, float, float]) -> None:
        y[0, :4, a] = box
        y[0, 4:, a] = scores

    put(0, (32, 32, 20, 16), (0.9, 0.0, 0.0))  # box A, class 0
    put(1, (33, 32, 20, 16), (0.8, 0.0, 0.0))  # box A moved 1 px: suppressed by anchor 0
    put(2, (32, 32, 20, 16), (0.0, 0.7, 0.0))  # box A again but class 1: NMS is per class, kept
    put(3, (10, 20, 8, 12), (0.0, 0.0, 0.6))  # box B, class 2
    put(4, (50, 40, 10, 10), (0.2, 0.0, 0.0))  # below conf 0.25
    return y


EXPECTED = {  # (class, score) -> frame-pixel box
    (0, 0.9): to_frame(22, 24, 42, 40),
    (1, 0.7): to_frame(22, 24, 42, 40),
    (2, 0.6): to_frame(6, 14, 14, 26),
}


def check(dets, expected: dict) -> None:
    got = {
        (int(c), round(float(s), 3)): b
        for c, s, b in zip(dets.class_ids, dets.scores, dets.xyxy, strict=True)
    }
    assert set(got) == set(expected), got
    for key, box in expected.items():
        np.testing.assert_allclose(got[key], box, atol=1e-3)


def test_end_to_end_exact_boxes(tmp_path, const_onnx, make_spec):
    path = const_onnx(tmp_path / "m.onnx", head(), IMGSZ)
    det = Detector(make_spec(path, NC, IMGSZ), path, threads=1)
    dets = det.detect(FRAME)
    check(dets, EXPECTED)
    assert list(dets.scores) == sorted(dets.scores, reverse=True)
    assert det.timing.infer_ms > 0 and det.timing.pre_ms > 0 and det.timing.post_ms > 0


def test_class_filter(tmp_path, const_onnx, make_spec):
    path = const_onnx(tmp_path / "m.onnx", head(), IMGSZ)
    spec = make_spec(path, NC, IMGSZ)
    check(Detector(spec, path, classes=[0]).detect(FRAME), {(0, 0.9): EXPECTED[(0, 0.9)]})
    check(
        Detector(spec, path, classes=[1, 2]).detect(FRAME),
        {k: v for k, v in EXPECTED.items() if k[0] in (1, 2)},
    )
    with pytest.raises(CctvkitError, match="outside 0..2"):
        Detector(spec, path, classes=[3]).detect(FRAME)


def test_class_filter_takes_best_wanted_class(tmp_path, const_onnx, make_spec):
    """With a filter, an anchor counts with its best *wanted* class: a person under a higher-scoring bus
    label is still a person (what Ultralytics' multi-label val does for one class)."""
    y = np.zeros((1, 4 + NC, 8), np.float32)
    y[0, :, 0] = [32, 32, 20, 16, 0.5, 0.0, 0.95]
    path = const_onnx(tmp_path / "m.onnx", y, IMGSZ)
    spec = make_spec(path, NC, IMGSZ)
    check(Detector(spec, path).detect(FRAME), {(2, 0.95): to_frame(22, 24, 42, 40)})
    check(Detector(spec, path, classes=[0]).detect(FRAME), {(0, 0.5): to_frame(22, 24, 42, 40)})


def test_transposed_output(tmp_path, const_onnx, make_spec):
    path = const_onnx(tmp_path / "m.onnx", head().transpose(0, 2, 1).copy(), IMGSZ)
    check(Detector(make_spec(path, NC, IMGSZ), path).detect(FRAME), EXPECTED)


def test_normalised_boxes(tmp_path, const_onnx, make_spec):
    y = head()
    y[0, [0, 2]] /= IMGSZ[1]
    y[0, [1, 3]] /= IMGSZ[0]
    path = const_onnx(tmp_path / "m.onnx", y, IMGSZ)
    check(Detector(make_spec(path, NC, IMGSZ, boxes_normalized=True), path).detect(FRAME), EXPECTED)
    # The same model read as pixel boxes gives tiny boxes in the top-left corner: the flag matters.
    small = Detector(make_spec(path, NC, IMGSZ), path).detect(FRAME)
    assert small.xyxy[:, 2].max() < 5


def test_int8_output_dequantised(tmp_path, const_onnx, make_spec):
    """Full-integer exports: normalised boxes and scores share one int8 tensor (scale 1/250, zp -128)."""
    q = QuantParams(1 / 250, -128)
    y = np.zeros((1, 4 + NC, 16), np.float32)
    # Values on the int8 grid so the expected boxes are exact; 64 px -> 250 steps.
    y[0, :, 0] = [100 / 250, 120 / 250, 50 / 250, 60 / 250, 0.9, 0.0, 0.0]
    y[0, :, 1] = [20 / 250, 50 / 250, 10 / 250, 10 / 250, 0.0, 0.252, 0.0]  # just above conf 0.25
    y[0, :, 2] = [200 / 250, 200 / 250, 10 / 250, 10 / 250, 0.0, 0.0, 0.248]  # just below
    path = const_onnx(tmp_path / "m.onnx", y, IMGSZ, quant=q)
    spec = make_spec(path, NC, IMGSZ, boxes_normalized=True, output_quant=q)
    det = Detector(spec, path)
    assert det.backend.run(np.zeros((1, 3, 64, 64), np.float32))[0].dtype == np.int8
    s = 64 / 250
    check(
        det.detect(FRAME),
        {
            (0, 0.9): to_frame(75 * s, 90 * s, 125 * s, 150 * s),
            (1, 0.252): to_frame(15 * s, 45 * s, 25 * s, 55 * s),
        },
    )
    with pytest.raises(CctvkitError, match="quantisation"):
        Detector(make_spec(path, NC, IMGSZ, boxes_normalized=True), path).detect(FRAME)


def test_head_shape_mismatch_names_the_fix(tmp_path, const_onnx, make_spec):
    path = const_onnx(tmp_path / "m.onnx", head(), IMGSZ)
    with pytest.raises(CctvkitError, match="class_names"):
        Detector(make_spec(path, 5, IMGSZ), path).detect(FRAME)


def test_decode_without_backend_many_candidates():
    """Decoder alone on a realistic (1, 84, 8400) head: one object seen by 50 neighbouring anchors."""
    rng = np.random.default_rng(0)
    y = np.zeros((1, 84, 8400), np.float32)
    y[0, 4:] = rng.uniform(0, 0.2, (80, 8400))
    idx = np.arange(1000, 1050)
    y[0, :4, idx] = np.array([320, 300, 100, 200]) + rng.normal(0, 2, (50, 4))
    y[0, 4, idx] = rng.uniform(0.5, 0.9, 50)
    spec = ModelSpec("detect", "onnx", "fp32", "x.onnx", (640, 640), [str(i) for i in range(80)])
    lb = Letterbox(1.0, 0, 0, 640, 640)
    dets = decode_yolov8([y], spec, lb, conf=0.25, iou=0.45)
    assert len(dets) == 1 and dets.class_ids[0] == 0
    assert dets.scores[0] == pytest.approx(y[0, 4, idx].max())
    assert len(decode_yolov8([y], spec, lb, conf=0.25, classes=[1])) == 0


def test_nms_rules():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, iou=0.5).tolist() == [0, 2]  # IoU(0,1) = 0.818 > 0.5
    assert nms(boxes, scores, iou=0.9).tolist() == [0, 1, 2]  # 0.818 <= 0.9 kept; 3 equals 0 (IoU 1)
    assert nms(boxes, scores, iou=0.5, max_det=1).tolist() == [0]
    classes = np.array([0, 1, 0, 1])
    assert sorted(batched_nms(boxes, scores, classes, iou=0.5).tolist()) == [0, 1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0)).size == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([0.3, 0.7], [0.3, 0.7]),  # already probabilities: untouched
        ([2.0, 0.0], [np.e**2 / (np.e**2 + 1), 1 / (np.e**2 + 1)]),  # logits: softmax
    ],
)
def test_classifier_softmax_only_when_needed(tmp_path, const_onnx, raw, expected):
    path = const_onnx(tmp_path / "c.onnx", np.array([raw], np.float32), (32, 32))
    spec = ModelSpec("classify", "onnx", "fp32", str(path), (32, 32), ["person", "empty"], decoding="probs")
    c = Classifier(spec, path, threshold=0.5).classify(FRAME)
    np.testing.assert_allclose(c.probs, expected, rtol=1e-5)
    assert c.person_prob == pytest.approx(expected[0], rel=1e-5)
    assert c.is_person == (expected[0] >= 0.5)


def test_quantised_probs_not_softmaxed():
    spec = ModelSpec(
        "classify",
        "tflite",
        "int8",
        "c.tflite",
        (32, 32),
        ["person", "empty"],
        decoding="probs",
        output_quant=QuantParams(1 / 256, -128),
    )
    # 76/256 + 179/256 = 0.996: probabilities within quantisation error, only renormalised
    # (a softmax would give 0.38 / 0.62).
    p = decode_probs([np.array([[76 - 128, 179 - 128]], np.int8)], spec)
    np.testing.assert_allclose(p, [76 / 255, 179 / 255], rtol=1e-5)
    assert p.sum() == pytest.approx(1.0)


def test_classifier_refuses_a_detector(tmp_path, const_onnx, make_spec):
    path = const_onnx(tmp_path / "m.onnx", head(), IMGSZ)
    with pytest.raises(CctvkitError, match="detect model"):
        Classifier(make_spec(path, NC, IMGSZ), path)


def test_two_person_classes_decode_as_one_person():
    """A detector trained on compose.label_classes: split (person, person_synthetic): box A seen as class 0
    by anchor 0 and as class 1 by anchor 2 is one person, reported as person_class, while a model whose
    classes are not both persons keeps class-aware NMS (the head() test above)."""
    names = ["person", "person_synthetic", "car"]
    spec = ModelSpec("detect", "onnx", "fp32", "x.onnx", IMGSZ, names, person_classes=[0, 1])
    assert spec.person_ids == [0, 1] and spec.to_json()["person_classes"] == [0, 1]
    lb = Letterbox(0.4, 0, 8, 120, 160)
    for classes in ([0], None):  # asking for the person asks for every person class
        dets = decode_yolov8([head()], spec, lb, conf=0.25, iou=0.45, classes=classes)
        person = dets.class_ids == 0
        assert person.sum() == 1 and set(dets.class_ids.tolist()) <= {0, 2}
        assert dets.scores[person][0] == pytest.approx(0.9)
    assert len(decode_yolov8([head()], spec, lb, conf=0.25, classes=[2])) == 1  # the car alone
    single = ModelSpec("detect", "onnx", "fp32", "x.onnx", IMGSZ, names)
    assert single.person_ids == [0] and "person_classes" not in single.to_json()  # manifests as before
    assert (decode_yolov8([head()], single, lb, conf=0.25).class_ids == 1).sum() == 1
