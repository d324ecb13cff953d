from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from toydata import make_toy_detect_dataset

from edge.detect.preprocess import prepare_classification, prepare_detection
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from export.calibration import ImageCalibrationReader, select_calibration_images
from export.onnx_export import expected_output_shape, export_onnx
from export.onnx_int8 import quantize_onnx_int8


def _run_all(path: Path, reader: ImageCalibrationReader) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reader.rewind()
    return np.concatenate([sess.run(None, x)[0] for x in reader])


def _no_temp_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


# --- calibration -----------------------------------------------------------------------------------------


def _files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((8, 8, 3), 128, np.uint8)
    paths = [folder / f"f{i:04d}.jpg" for i in range(n)]
    for p in paths:
        cv2.imwrite(str(p), img)
    return paths


def test_calibration_needs_32_images(tmp_path: Path) -> None:
    _files(tmp_path / "few", 31)
    with pytest.raises(CctvkitError, match=r"few: only 31 calibration images -- add at least 32 images"):
        select_calibration_images(tmp_path / "few")
    with pytest.raises(CctvkitError, match="calibration image folder not found"):
        select_calibration_images(tmp_path / "missing")


def test_calibration_sampled_evenly_and_warns_when_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _files(tmp_path / "frames" / "sub", 100)
    picked = select_calibration_images(tmp_path / "frames", n=40, seed=3)
    assert len(picked) == 40 and len(set(picked)) == 40 and picked == sorted(picked)
    gaps = np.diff([paths.index(p) for p in picked])
    assert gaps.min() >= 2 and gaps.max() <= 3  # 100/40 = 2.5: even spread over the whole sequence
    assert select_calibration_images(tmp_path / "frames", n=40, seed=3) == picked  # deterministic
    assert select_calibration_images(paths[::-1], n=40, seed=3) == picked  # list input, any order
    with caplog.at_level(logging.WARNING):
        everything = select_calibration_images(tmp_path / "frames", n=300)
    assert everything == paths
    assert "100 calibration images, fewer than the 300" in caplog.text


def test_reader_feeds_exactly_the_device_preprocessing(tmp_path: Path) -> None:
    from edge.types import ModelSpec

    make_toy_detect_dataset(tmp_path / "ds", n_train=1, n_val=1, size=(72, 120))
    img = list_images(tmp_path / "ds" / "images" / "train")[0]
    frame = cv2.imread(str(img))
    det = ModelSpec("detect", "onnx", "fp32", "m.onnx", (64, 96), ["person"])
    x = ImageCalibrationReader([img], det).get_next()["images"]
    np.testing.assert_array_equal(x, prepare_detection(frame, det)[0])
    cls = ModelSpec("classify", "onnx", "fp32", "m.onnx", (32, 32), ["no_person", "person"], decoding="probs")
    x = ImageCalibrationReader([img], cls, input_name="in").get_next()["in"]
    np.testing.assert_array_equal(x, prepare_classification(frame, cls))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(CctvkitError, match="bad.jpg: cannot read calibration image"):
        ImageCalibrationReader([bad], cls).get_next()


# --- export ----------------------------------------------------------------------------------------------


def test_corrupt_pt_is_a_user_error_and_writes_nothing(tmp_path: Path) -> None:
    pt = tmp_path / "detector.pt"
    pt.write_bytes(b"\x80\x04 truncated pickle")
    out = tmp_path / "exported"
    with pytest.raises(CctvkitError, match="detector.pt: cannot load the weights"):
        export_onnx(pt, out / "detector-fp32.onnx", task="detect", imgsz=64)
    assert not out.exists() or list(out.iterdir()) == []
    with pytest.raises(CctvkitError, match="not a multiple of 32"):
        export_onnx(pt, out / "detector-fp32.onnx", task="detect", imgsz=100)


@pytest.mark.slow
def test_detector_fp32_and_int8(toy_models: dict[str, Path], tmp_path: Path) -> None:
    fp32_path, int8_path = tmp_path / "detector-fp32.onnx", tmp_path / "detector-int8.onnx"
    spec = export_onnx(toy_models["detector"], fp32_path, task="detect", imgsz=64)
    assert (spec.task, spec.format, spec.precision, spec.layout, spec.input_dtype) == (
        "detect",
        "onnx",
        "fp32",
        "NCHW",
        "float32",
    )
    assert spec.decoding == "yolov8" and spec.class_names == ["person"] and spec.person_class == 0
    assert spec.imgsz == (64, 64) and spec.boxes_normalized is False and spec.path == fp32_path.name
    assert len(spec.sha256) == 64

    calib = select_calibration_images(toy_models["detect_yaml"].parent / "images" / "train", n=32)
    spec8 = quantize_onnx_int8(fp32_path, int8_path, spec, calib, progress=False)
    assert spec8.precision == "int8" and spec8.input_dtype == "float32" and spec8.input_quant is None
    assert spec8.notes["calibration_method"] == "MinMax" and spec8.notes["calibration_images"] == 32
    assert spec8.notes["activation_type"] == "U8" and spec8.class_names == spec.class_names
    _no_temp_leftovers(tmp_path)

    reader = ImageCalibrationReader(calib, spec)
    y32, y8 = _run_all(fp32_path, reader), _run_all(int8_path, reader)
    assert y32.shape == y8.shape == (32, *expected_output_shape("detect", (64, 64), 1)[1:]) == (32, 5, 84)
    scores32, scores8 = y32[:, 4].ravel(), y8[:, 4].ravel()
    assert np.corrcoef(scores32, scores8)[0, 1] > 0.9
    assert np.abs(scores32 - scores8).max() < 0.1 * max(float(np.ptp(scores32)), 1e-3) + 0.02
    assert np.corrcoef(y32[:, :4].ravel(), y8[:, :4].ravel())[0, 1] > 0.9

    graph = onnx.load(str(int8_path)).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    producers = {o: n for n in graph.node for o in n.output}
    conv_q = [
        n for n in graph.node if n.op_type == "Conv" and producers[n.input[0]].op_type == "DequantizeLinear"
    ]
    # every Conv runs on quantised weights but the head's box branch and the DFL conv (kept FP32 by default)
    box = [f"/model.23/cv2.{i}/cv2.{i}.{j}/conv/Conv" if j < 2 else f"/model.23/cv2.{i}/cv2.{i}.2/Conv"
           for i in range(3) for j in range(3)]
    assert spec8.notes["fp32_nodes"] == [*box, "/model.23/dfl/conv/Conv"]
    float_weights = {n.name for n in graph.node if n.op_type == "Conv"
                     and getattr(producers.get(n.input[1]), "op_type", "") != "DequantizeLinear"}
    assert float_weights == {*box, "/model.23/dfl/conv/Conv"}
    assert len(conv_q) > 40  # the backbone and neck run on quantised activations
    head = producers[graph.output[0].name]
    assert head.op_type == "Concat"  # the box + score Concat stays float
    assert all(producers[i].op_type != "DequantizeLinear" for i in head.input)
    assert not any(n.op_type == "QuantizeLinear" and head.output[0] in n.input for n in graph.node)

    # Quantising the head's Concat (and its Mul/Sigmoid inputs) is refused, and nothing is written
    bad = tmp_path / "detector-int8-concat.onnx"
    with pytest.raises(CctvkitError, match="detector-int8-concat.onnx: output 'output0' is quantised"):
        quantize_onnx_int8(
            fp32_path,
            bad,
            spec,
            calib,
            progress=False,
            op_types_to_quantize=("Conv", "MatMul", "Concat", "Mul", "Sigmoid", "Add"),
            float_tail=False,  # the default keeps that tail float whatever the op types
        )
    assert not bad.exists()
    _no_temp_leftovers(tmp_path)


@pytest.mark.slow
def test_classifier_fp32_and_int8(toy_models: dict[str, Path], tmp_path: Path) -> None:
    fp32_path, int8_path = tmp_path / "classifier-fp32.onnx", tmp_path / "classifier-int8.onnx"
    spec = export_onnx(toy_models["classifier"], fp32_path, task="classify", imgsz=32)
    assert spec.decoding == "probs" and spec.class_names == ["no_person", "person"] and spec.person_class == 1
    calib = select_calibration_images(toy_models["classify_root"] / "train", n=32)
    spec8 = quantize_onnx_int8(
        fp32_path, int8_path, spec, calib, activation_type="S8", method="Percentile", progress=False
    )
    assert spec8.notes["activation_type"] == "S8" and spec8.notes["calibration_method"] == "Percentile"
    reader = ImageCalibrationReader(calib, spec)
    p32, p8 = _run_all(fp32_path, reader), _run_all(int8_path, reader)
    assert p32.shape == p8.shape == (32, 2)
    np.testing.assert_allclose(p32.sum(1), 1.0, atol=1e-4)  # softmax is inside the model
    assert np.abs(p32 - p8).max() < 0.05
    assert Counter(n.op_type for n in onnx.load(str(int8_path)).graph.node)["QuantizeLinear"] > 0


@pytest.mark.slow
def test_int8_failure_leaves_nothing(toy_models: dict[str, Path], tmp_path: Path) -> None:
    fp32_path = tmp_path / "classifier-fp32.onnx"
    spec = export_onnx(toy_models["classifier"], fp32_path, task="classify", imgsz=32)
    calib = select_calibration_images(toy_models["classify_root"] / "train", n=32)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"garbage")
    with pytest.raises(CctvkitError, match="cannot read calibration image"):
        quantize_onnx_int8(
            fp32_path, tmp_path / "classifier-int8.onnx", spec, [*calib, broken], progress=False
        )
    assert not (tmp_path / "classifier-int8.onnx").exists()
    _no_temp_leftovers(tmp_path)
    with pytest.raises(CctvkitError, match="unknown calibration method"):
        quantize_onnx_int8(fp32_path, tmp_path / "x.onnx", spec, calib, method="KL")


def test_chunked_calibration_ranges(tmp_path: Path) -> None:
    from edge.types import ModelSpec
    from export.onnx_int8 import calibration_chunk

    assert (calibration_chunk(300), calibration_chunk(32), calibration_chunk(37)) == (15, 16, 1)
    paths = _files(tmp_path / "f", 6)
    spec = ModelSpec(
        "classify", "onnx", "fp32", "m.onnx", (32, 32), ["no_person", "person"], decoding="probs"
    )
    reader = ImageCalibrationReader(paths, spec)
    reader.set_range(2, 4)
    assert len(list(reader)) == 2
    reader.rewind()
    assert len(list(reader)) == 6
