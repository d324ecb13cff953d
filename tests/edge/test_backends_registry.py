"""Backend plug-ins on real model files made here: ONNX graphs from the onnx helper API, an ncnn .param/.bin
written by hand, and the registry's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.backends import (
    BACKENDS,
    available_backends,
    backend_for,
    default_backend,
    get_backend,
    spec_from_onnx,
)
from edge.backends.base import Backend
from edge.backends.ncnn import parse_param_blobs
from edge.detector import Detector, load_from_manifest
from edge.errors import CctvkitError
from edge.manifest import Manifest


def conv_onnx(path: Path, weight: np.ndarray, bias: np.ndarray, imgsz: tuple[int, int]) -> Path:
    """images (1, 3, H, W) -> 1x1 Conv -> (1, O, H, W)."""
    from onnx import TensorProto, helper, numpy_helper

    o = weight.shape[0]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "W", "B"], ["output0"], kernel_shape=[1, 1])],
        "conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, o, *imgsz])],
        initializer=[
            numpy_helper.from_array(weight.reshape(o, 3, 1, 1).astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def numpy_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.einsum("oc,bchw->bohw", weight, x) + bias[None, :, None, None]


# --- registry -----------------------------------------------------------------------------------------
class NeverInstalled(Backend):
    """A plug-in whose runtime cannot exist: the registry must say so, not crash."""

    name = "never"
    formats = ("onnx",)
    modules = ("cctvkit_no_such_runtime",)


def test_unknown_backend_lists_valid_names_and_why(monkeypatch):
    monkeypatch.setitem(BACKENDS, "never", NeverInstalled)
    with pytest.raises(CctvkitError) as e:
        get_backend("tensorrt")
    msg = str(e.value)
    assert "unknown backend 'tensorrt'" in msg
    for name in ("onnxruntime", "litert", "ncnn", "never"):
        assert name in msg
    assert "never: not installed (pip install cctvkit-no-such-runtime)" in msg
    assert "\n" not in msg
    assert available_backends()["never"] is not None
    with pytest.raises(CctvkitError, match="backend 'never' is not installed"):
        get_backend("never")


def test_installed_backends_and_defaults():
    avail = available_backends()
    assert set(avail) >= {"onnxruntime", "litert", "ncnn"}
    assert avail["onnxruntime"] is None  # the venv has it; the other tests depend on it
    assert {f: default_backend(f) for f in ("onnx", "tflite", "ncnn")} == {
        "onnx": "onnxruntime",
        "tflite": "litert",
        "ncnn": "ncnn",
    }
    with pytest.raises(CctvkitError, match="no backend reads model format 'coreml'"):
        default_backend("coreml")
    with pytest.raises(CctvkitError, match="cannot read onnx models"):
        backend_for("onnx", "litert")


# --- onnxruntime ----------------------------------------------------------------------------------------
def test_onnxruntime_conv_numerics(tmp_path, make_spec):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    path = conv_onnx(tmp_path / "conv.onnx", w, b, (8, 12))
    be = get_backend("onnxruntime")(path, make_spec(path, 1, (8, 12)), threads=1)
    assert be.input_shape == (1, 3, 8, 12)
    x = rng.uniform(size=(1, 3, 8, 12)).astype(np.float32)
    (y,) = be.run(x)
    assert y.dtype == np.float32 and y.shape == (1, 5, 8, 12)
    np.testing.assert_allclose(y, numpy_conv(x, w, b), rtol=1e-5, atol=1e-5)
    with pytest.raises(CctvkitError, match="input shape"):
        be.run(x[:, :, :4])
    with pytest.raises(CctvkitError, match="input dtype"):
        be.run(x.astype(np.float64))


def test_missing_and_corrupt_model_files(tmp_path, make_spec):
    cls = get_backend("onnxruntime")
    with pytest.raises(CctvkitError, match="model file not found"):
        cls(tmp_path / "nope.onnx", make_spec(tmp_path / "nope.onnx", 1), 1)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(CctvkitError, match="re-export") as e:
        cls(bad, make_spec(bad, 1), 1)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CctvkitError, match="threads"):
        cls(bad, make_spec(bad, 1), 0)


def test_spec_from_onnx_reads_ultralytics_metadata(tmp_path, const_onnx):
    meta = {
        "names": "{0: 'person', 1: 'car', 2: 'dog'}",
        "imgsz": "[64, 96]",
        "task": "detect",
        "stride": "32",
        "args": "{'batch': 1, 'half': False, 'int8': False, 'nms': False}",
    }
    head = np.zeros((1, 7, 126), np.float32)
    path = const_onnx(tmp_path / "yolo.onnx", head, (64, 96), metadata=meta, dynamic=True)
    spec = spec_from_onnx(path)
    assert spec.task == "detect" and spec.format == "onnx" and spec.precision == "fp32"
    assert spec.class_names == ["person", "car", "dog"] and spec.person_class == 0
    assert spec.imgsz == (64, 96)  # dynamic input axes: from the metadata
    assert spec.layout == "NCHW" and spec.input_dtype == "float32" and not spec.boxes_normalized
    assert len(spec.sha256) == 64
    det = Detector(spec, path)
    assert det.backend.input_shape == (1, 3, 64, 96)
    assert len(det.detect(np.zeros((50, 70, 3), np.uint8))) == 0

    wrong = const_onnx(tmp_path / "wrong.onnx", np.zeros((1, 9, 126), np.float32), metadata=meta)
    with pytest.raises(CctvkitError, match="names 3 classes but the model outputs 5"):
        spec_from_onnx(wrong)
    (tmp_path / "x.tflite").write_bytes(path.read_bytes())
    with pytest.raises(CctvkitError, match="expected a .onnx file"):
        spec_from_onnx(tmp_path / "x.tflite")


def test_load_from_manifest_checks_sha256(tmp_path, const_onnx, make_spec):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    head = np.zeros((1, 5, 21), np.float32)
    head[0, :, 3] = [32, 32, 16, 40, 0.8]
    const_onnx(run / "export" / "person.onnx", head, (64, 64))
    m = Manifest.create(run, "t")
    m.add_model("person", make_spec("export/person.onnx", 1, (64, 64)))
    m.save()
    det = load_from_manifest(Manifest.load(run), "person", threads=1, conf=0.5)
    assert isinstance(det, Detector) and det.conf == 0.5
    dets = det.detect(np.zeros((64, 64, 3), np.uint8))
    np.testing.assert_allclose(dets.xyxy, [[24, 12, 40, 52]], atol=1e-4)
    with pytest.raises(CctvkitError, match="no model 'other'"):
        load_from_manifest(Manifest.load(run), "other")
    with open(run / "export" / "person.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(CctvkitError, match="sha256 does not match"):
        load_from_manifest(Manifest.load(run), "person")


# --- ncnn -----------------------------------------------------------------------------------------------
@pytest.fixture
def ncnn_available() -> None:
    if get_backend("ncnn").unavailable() is not None:
        pytest.skip("ncnn not installed")


def test_ncnn_conv_numerics(tmp_path, ncnn_available, ncnn_conv, make_spec):
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    param, binf = ncnn_conv(tmp_path / "head", w, b, (8, 12))
    assert parse_param_blobs(param) == (["in0"], ["out0"])
    spec = make_spec(param, 1, (8, 12), fmt="ncnn", extra_files=[binf.name])
    be = get_backend("ncnn")(param, spec, threads=1)
    x = rng.uniform(size=(1, 3, 8, 12)).astype(np.float32)
    (y,) = be.run(x)
    assert y.shape == (1, 5, 96)
    np.testing.assert_allclose(y, numpy_conv(x, w, b).reshape(1, 5, 96), rtol=1e-5, atol=1e-5)


def test_ncnn_detector_end_to_end(tmp_path, ncnn_available, ncnn_conv, make_spec):
    """Zero weights and a bias of (cx, cy, w, h, score): every anchor predicts the same box, NMS keeps one."""
    w = np.zeros((5, 3), np.float32)
    b = np.array([16, 16, 8, 12, 0.75], np.float32)
    param, binf = ncnn_conv(tmp_path / "model.ncnn", w, b, (32, 32))
    spec = make_spec(param, 1, (32, 32), fmt="ncnn", extra_files=[binf.name])
    det = Detector(spec, param, threads=1)
    # 64x48 frame -> scale 0.5, 4 px padding above and below.
    dets = det.detect(np.zeros((48, 64, 3), np.uint8))
    assert len(dets) == 1 and dets.scores[0] == pytest.approx(0.75)
    np.testing.assert_allclose(dets.xyxy[0], [24, 12, 40, 36], atol=1e-3)


def test_ncnn_missing_bin_and_bad_param(tmp_path, ncnn_available, ncnn_conv, make_spec):
    param, binf = ncnn_conv(tmp_path / "m", np.zeros((5, 3)), np.zeros(5), (8, 8))
    binf.unlink()
    with pytest.raises(CctvkitError, match=r"weights \(.bin\) are missing"):
        get_backend("ncnn")(param, make_spec(param, 1, (8, 8), fmt="ncnn"), 1)
    bad = tmp_path / "bad.param"
    bad.write_text("not a param\n")
    with pytest.raises(CctvkitError, match="7767517"):
        parse_param_blobs(bad)
