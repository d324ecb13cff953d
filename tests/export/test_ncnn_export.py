"""pnnx export (FP32/FP16) and INT8 quantisation of the toy YOLO models, run through the edge runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.backends.ncnn import NcnnBackend
from edge.detect.preprocess import prepare_detection
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from export.calibration import select_calibration_images
from export.ncnn_export import cosine, export_ncnn, run_ncnn
from export.ncnn_int8 import format_layer_table, head_layers, quantize_ncnn_int8_report
from export.ncnn_model import bin_bytes, param_text, read_ncnn
from export.onnx_export import export_onnx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def det_fp32(toy_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ncnn")
    return out, export_ncnn(toy_models["detector"], out, task="detect", imgsz=64)


def _no_temp_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_detector_fp32_and_fp16_match_onnx_and_run_on_the_edge(
    det_fp32: tuple[Path, object], toy_models: dict[str, Path], tmp_path: Path
) -> None:
    out, spec = det_fp32
    assert (spec.format, spec.precision, spec.path, spec.extra_files) == (
        "ncnn", "fp32", "detector-fp32.param", ["detector-fp32.bin"]
    )  # fmt: skip
    assert (spec.notes["input_name"], spec.notes["output_names"], spec.decoding) == (
        "in0",
        ["out0"],
        "yolov8",
    )
    assert spec.class_names == ["person"] and len(spec.sha256) == 64
    param, weights = out / spec.path, out / spec.extra_files[0]
    model = read_ncnn(param, weights)  # what pnnx writes parses back to the same bytes
    assert param_text(model) == param.read_text() and bin_bytes(model) == weights.read_bytes()

    # independent of pnnx: the same model through Ultralytics' ONNX export and ONNX Runtime
    onnx_spec = export_onnx(toy_models["detector"], tmp_path / "d.onnx", task="detect", imgsz=64)
    frame = cv2.imread(str(list_images(toy_models["detect_yaml"].parent / "images" / "val")[0]))
    x = prepare_detection(frame, onnx_spec)[0]
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    y_onnx = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    y_ncnn = run_ncnn(param, weights, x)
    assert y_ncnn.shape == y_onnx.shape == (1, 5, 8 * 8 + 4 * 4 + 2 * 2)
    assert np.abs(y_ncnn - y_onnx).max() < 1e-3 * max(1.0, np.abs(y_onnx).max())

    fp16 = export_ncnn(toy_models["detector"], out, task="detect", imgsz=64, fp16=True)
    assert fp16.precision == "fp16" and fp16.path == "detector-fp16.param"
    assert fp16.notes["ncnn_fp16"] is True and spec.notes["ncnn_fp16"] is False  # the backend reads these
    assert (out / "detector-fp16.bin").stat().st_size < 0.6 * weights.stat().st_size  # float16 weights
    y16 = run_ncnn(out / fp16.path, out / fp16.extra_files[0], x, fp16=True)
    assert cosine(y16, y_onnx) > 0.999

    for s in (spec, fp16):
        det = Detector(s, out / s.path, backend="ncnn", threads=1, conf=0.01)
        assert isinstance(det.backend, NcnnBackend)
        dets = det.detect(frame)
        assert dets.xyxy.shape[1] == 4 and np.isfinite(dets.xyxy).all()
    _no_temp_leftovers(out)


def test_classifier_export(toy_models: dict[str, Path], tmp_path: Path) -> None:
    spec = export_ncnn(toy_models["classifier"], tmp_path, task="classify", imgsz=32)
    assert spec.decoding == "probs" and spec.class_names[spec.person_class] == "person"
    cls = Classifier(spec, tmp_path / spec.path, backend="ncnn", threads=1)
    frame = np.full((48, 64, 3), 90, np.uint8)
    probs = cls.classify(frame).probs
    assert probs.shape == (len(spec.class_names),) and probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_export_errors_write_nothing(toy_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CctvkitError, match="model file not found"):
        export_ncnn(tmp_path / "none.pt", tmp_path / "o", task="detect", imgsz=64)
    with pytest.raises(CctvkitError, match="not a multiple of 32"):
        export_ncnn(toy_models["detector"], tmp_path / "o", task="detect", imgsz=50)
    with pytest.raises(CctvkitError, match="weights are a 'detect' model, expected 'classify'"):
        export_ncnn(toy_models["detector"], tmp_path / "o", task="classify", imgsz=64)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CctvkitError, match=rf"^{corrupt}: cannot load the weights"):
        export_ncnn(corrupt, tmp_path / "o", task="detect", imgsz=64)
    assert not (tmp_path / "o").exists()


def test_int8_detector_runs_int8_and_follows_fp32(
    det_fp32: tuple[Path, object], toy_models: dict[str, Path], tmp_path: Path
) -> None:
    out, spec = det_fp32
    param, weights = out / spec.path, out / spec.extra_files[0]
    images = select_calibration_images(toy_models["detect_yaml"].parent / "images" / "train", n=32)
    assert len(images) == 32
    res = quantize_ncnn_int8_report(param, weights, tmp_path, spec, images, check_images=8)
    q = res.spec
    assert (q.precision, q.path, q.extra_files) == ("int8", "detector-int8.param", ["detector-int8.bin"])
    assert q.notes["calibration"]["method"] == "percentile" and q.notes["calibration"]["images"] == 32
    head = head_layers(read_ncnn(param, weights))
    assert q.notes["fp32_layers"] == head and len(head) == 7  # 3 box, 3 class convolutions and the DFL
    assert q.notes["int8_layers"] == sum(r.int8 for r in res.layers) > 50
    table = format_layer_table(res.layers, res.outputs, res.box_mae_px)
    assert "model boxes" in table and "model scores" in table and min(r.cosine for r in res.layers) > 0.9
    _no_temp_leftovers(tmp_path)

    qparam, qbin = tmp_path / q.path, tmp_path / q.extra_files[0]
    assert " 8=2" in qparam.read_text() and bin_bytes(read_ncnn(qparam, qbin)) == qbin.read_bytes()
    assert qbin.stat().st_size < 0.4 * weights.stat().st_size  # int8 weights

    # the edge backend opens it with use_int8_inference; outputs follow the FP32 model on held-out frames
    fp32 = NcnnBackend(param, spec, 1)
    int8 = NcnnBackend(qparam, q, 1)
    assert int8.net.opt.use_int8_inference
    for p in list_images(toy_models["detect_yaml"].parent / "images" / "val")[:4]:
        x = prepare_detection(cv2.imread(str(p)), spec)[0]
        a, b = fp32.run(x)[0], int8.run(x)[0]
        assert cosine(a[:, :4], b[:, :4]) > 0.95  # boxes
        assert cosine(a[:, 4:], b[:, 4:]) > 0.95  # class scores
        assert not np.array_equal(a, b)


def test_int8_refuses_a_model_it_breaks(
    det_fp32: tuple[Path, object], toy_models: dict[str, Path], tmp_path: Path
) -> None:
    out, spec = det_fp32
    images = select_calibration_images(toy_models["detect_yaml"].parent / "images" / "train", n=32)
    with pytest.raises(CctvkitError, match=r"detector-int8.param: INT8 output cosine .* < 1.0"):
        quantize_ncnn_int8_report(
            out / spec.path, out / spec.extra_files[0], tmp_path, spec, images, method="max",
            keep_fp32="none", check_images=2, min_output_cosine=1.0,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CctvkitError, match=r"keep_fp32 names unknown layers \['nope'\]"):
        quantize_ncnn_int8_report(
            out / spec.path, out / spec.extra_files[0], tmp_path, spec, images, keep_fp32=["nope"]
        )
