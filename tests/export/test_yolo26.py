"""train.detector_arch yolo26n: trained from its Ultralytics yaml, exported as its one-to-many head in the
YOLOv8 layout (export/offline.py RAW_HEAD_NMS), decoded by the one edge decoder, INT8 with its DFL-free
box branch float, and read by ncnn (pnnx) alike."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from toydata import make_toy_detect_dataset

from edge.detect.preprocess import prepare_detection
from edge.detector import Detector
from edge.formats.yolo import list_images
from export import offline
from export.calibration import select_calibration_images
from export.onnx_export import expected_output_shape, export_onnx
from export.onnx_int8 import box_nodes, dfl_nodes, quantize_onnx_int8


@pytest.fixture(scope="module")
def yolo26(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from trainer.yolo.train import train_detector

    root = tmp_path_factory.mktemp("yolo26")
    data = make_toy_detect_dataset(root / "data")
    res = train_detector(data, root / "out", epochs=1, imgsz=64, batch=8, workers=0, progress=False,
                         arch="yolo26n")
    fp32 = root / "detector-fp32.onnx"
    spec = export_onnx(res.weights, fp32, task="detect", imgsz=64)
    return {"pt": res.weights, "images": data.parent / "images" / "train", "root": root, "fp32": fp32,
            "spec": spec}


def test_yolo26n_is_an_architecture_choice() -> None:
    from trainer.config import TrainParams

    assert TrainParams(detector_arch="yolo26n").detector_arch == "yolo26n"
    assert "yolo26n" in offline.DETECTOR_ARCHS


def test_yolo26n_exports_its_raw_head_and_decodes_like_pytorch(yolo26: dict[str, Any]) -> None:
    import torch

    model = offline.load_model("detect", yolo26["pt"])
    head = model.model.model[-1]
    assert type(head).__name__ == "Detect" and head.reg_max == 1  # DFL-free
    assert getattr(head, "one2one_cv2", None) is not None  # trained with the NMS-free head beside it

    path, spec = yolo26["fp32"], yolo26["spec"]
    assert spec.decoding == "yolov8"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = cv2.imread(str(list_images(yolo26["images"])[0]))
    x, _ = prepare_detection(frame, spec)
    y_onnx = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert y_onnx.shape == expected_output_shape("detect", (64, 64), 1) == (1, 5, 84)

    # The file is the one-to-many head (cx, cy, w, h in input pixels + scores), exactly what PyTorch's
    # one-to-many inference gives: the layout decode_yolov8 reads.
    net = model.model.eval()
    head.end2end = False
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(y_onnx, y_torch, atol=1e-3, rtol=1e-3)

    # and the edge runtime decodes it into frame-pixel boxes
    det = Detector(spec, path, threads=1, conf=0.001).detect(frame)
    assert len(det) > 0 and det.xyxy.shape[1] == 4
    h, w = frame.shape[:2]
    assert (det.xyxy >= -1).all() and (det.xyxy[:, [0, 2]] <= w + 1).all() and (det.xyxy[:, [1, 3]] <= h + 1).all()


def test_yolo26n_int8_keeps_its_dfl_free_box_branch_float(yolo26: dict[str, Any]) -> None:
    fp32, spec = yolo26["fp32"], yolo26["spec"]
    graph = onnx.load(str(fp32)).graph
    assert dfl_nodes(graph) == []
    box = box_nodes(graph)
    assert box == [f"/model.23/cv2.{i}/cv2.{i}.{j}/conv/Conv" if j < 2 else f"/model.23/cv2.{i}/cv2.{i}.2/Conv"
                   for i in range(3) for j in range(3)]
    calib = select_calibration_images(yolo26["images"], n=32)
    int8 = yolo26["root"] / "detector-int8.onnx"
    spec8 = quantize_onnx_int8(fp32, int8, spec, calib, progress=False)
    assert spec8.notes["fp32_nodes"] == box
    frames = [cv2.imread(str(p)) for p in calib]
    xs = [prepare_detection(f, spec)[0] for f in frames]
    s32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    y32 = np.concatenate([s32.run(None, {"images": x})[0] for x in xs])
    y8 = np.concatenate([s8.run(None, {"images": x})[0] for x in xs])
    assert np.corrcoef(y32[:, :4].ravel(), y8[:, :4].ravel())[0, 1] > 0.99
    assert np.corrcoef(y32[:, 4].ravel(), y8[:, 4].ravel())[0, 1] > 0.9
    assert len(Detector(spec8, int8, threads=1, conf=0.001).detect(frames[0])) > 0


def test_yolo26n_ncnn_detects_like_its_onnx(yolo26: dict[str, Any]) -> None:
    """pnnx reads the same one-to-many head (cosine 1.0 against TorchScript, checked by the exporter) and
    the ncnn backend's detections on a frame match the ONNX model's."""
    from export.ncnn_export import export_ncnn

    out = yolo26["root"] / "ncnn"
    spec = export_ncnn(yolo26["pt"], out, task="detect", imgsz=64)
    assert spec.decoding == "yolov8" and spec.notes["cosine_vs_torchscript"] > 0.999
    frame = cv2.imread(str(list_images(yolo26["images"])[1]))
    a = Detector(yolo26["spec"], yolo26["fp32"], threads=1, conf=0.01).detect(frame)
    b = Detector(spec, out / spec.path, threads=1, conf=0.01).detect(frame)
    assert len(a) > 0 and len(a) == len(b)
    np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=2e-3)
