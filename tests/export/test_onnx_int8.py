"""INT8 options of export.onnx_int8: which nodes stay FP32 (keep_fp32, the float tail), what ONNX Runtime
makes of the default (integer kernels end to end), QDQ vs QOperator.

The fast tests build a YOLO-like head by hand (SiLU conv, box conv -> DFL softmax + conv, class conv ->
sigmoid, Concat); the slow one quantises the toy Ultralytics detector and runs it in the edge runtime.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.errors import CctvkitError
from edge.types import ModelSpec
from export.calibration import ImageCalibrationReader, select_calibration_images
from export.onnx_int8 import CONV_OP_TYPES, box_nodes, dfl_nodes, head_nodes, quantize_onnx_int8, tail_nodes

ANCHORS = 21  # (32/8)^2 + (32/16)^2 + (32/32)^2: what check_onnx_io expects of a 32x32 detector


def _yolo_like(path: Path) -> None:
    """images (1,3,32,32) -> SiLU conv (1,8,3,7) -> box conv (64 = 4 sides x 16 bins) -> DFL, and
    class conv -> sigmoid; output (1, 5, 21) like an Ultralytics head."""
    rng = np.random.default_rng(0)

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(
            np.asarray(arr, np.float32 if arr.dtype.kind == "f" else np.int64), name
        )

    inits = [
        init("w0", rng.normal(0, 0.5, (8, 3, 2, 2))),
        init("wb", rng.normal(0, 0.5, (64, 8, 1, 1))),
        init("wc", rng.normal(0, 0.5, (1, 8, 1, 1))),
        init("wdfl", np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1)),
        init("s_box", np.array([1, 4, 16, ANCHORS])),
        init("s_dfl", np.array([1, 4, ANCHORS])),
        init("s_cls", np.array([1, 1, ANCHORS])),
        init("k", np.array([[[4.0]]], np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w0"], ["a"], "stem", kernel_shape=[2, 2], strides=[15, 5]),
        helper.make_node("Sigmoid", ["a"], ["a_sig"], "stem_sig"),
        helper.make_node("Mul", ["a", "a_sig"], ["f"], "stem_silu"),
        helper.make_node("Conv", ["f", "wb"], ["b"], "box_conv"),
        helper.make_node("Conv", ["f", "wc"], ["c"], "cls_conv"),
        helper.make_node("Reshape", ["b", "s_box"], ["b4"], "box_reshape"),
        helper.make_node("Transpose", ["b4"], ["bt"], "box_transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["bt"], ["bs"], "dfl_softmax", axis=1),
        helper.make_node("Conv", ["bs", "wdfl"], ["d"], "dfl_conv"),
        helper.make_node("Reshape", ["d", "s_dfl"], ["d3"], "dfl_reshape"),
        helper.make_node("Mul", ["d3", "k"], ["boxes"], "box_scale"),
        helper.make_node("Reshape", ["c", "s_cls"], ["c3"], "cls_reshape"),
        helper.make_node("Sigmoid", ["c3"], ["scores"], "cls_sigmoid"),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], "head_concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, ANCHORS])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _frames(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        p = folder / f"f{i:03d}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        paths.append(p)
    return paths


SPEC = ModelSpec("detect", "onnx", "fp32", "m.onnx", (32, 32), ["person"])


def _float_convs(path: Path) -> set[str]:
    """Conv nodes with float32 weights (an initialiser, not a DequantizeLinear output): ONNX Runtime runs
    them as float Convs; a quantised Conv's weights always come through a DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    producers = {o: n for n in graph.node for o in n.output}
    return {
        n.name
        for n in graph.node
        if n.op_type == "Conv" and getattr(producers.get(n.input[1]), "op_type", "") != "DequantizeLinear"
    }


def _ort_ops(path: Path, tmp: Path) -> Counter[str]:
    """Operator counts of the graph ONNX Runtime runs (its QDQ fusions applied; EXTENDED: the level whose
    result ORT can save, and the one holding the QDQ fusions)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp / f"{path.stem}-ort.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


def _outputs(path: Path, images: list[Path]) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reader = ImageCalibrationReader(images, SPEC)
    return np.concatenate([sess.run(None, x)[0] for x in reader])


def test_head_and_dfl_nodes_found(tmp_path: Path) -> None:
    _yolo_like(tmp_path / "m.onnx")
    assert dfl_nodes(tmp_path / "m.onnx") == ["dfl_conv"]
    # walking back from the output: through the DFL conv on to the box conv, stopping at the class conv
    assert head_nodes(tmp_path / "m.onnx") == ["box_conv", "cls_conv", "dfl_conv"]
    # the box branch: what reaches the DFL conv and no class output (no shared trunk conv), and the DFL conv
    assert box_nodes(tmp_path / "m.onnx") == ["box_conv", "dfl_conv"]
    assert tail_nodes(tmp_path / "m.onnx") == [
        "box_reshape",
        "box_transpose",
        "dfl_softmax",
        "dfl_reshape",
        "box_scale",
        "cls_reshape",
        "cls_sigmoid",
        "head_concat",
    ]


def test_default_keeps_the_box_branch_fp32(tmp_path: Path) -> None:
    fp32 = tmp_path / "m.onnx"
    _yolo_like(fp32)
    calib = select_calibration_images(_frames(tmp_path / "calib", 32), n=32)
    out = {k: tmp_path / f"m-{k}.onnx" for k in ("box", "dfl", "head", "none")}
    specs = {k: quantize_onnx_int8(fp32, out[k], SPEC, calib, progress=False, keep_fp32=k) for k in out}
    default = quantize_onnx_int8(fp32, tmp_path / "m-default.onnx", SPEC, calib, progress=False)

    assert default.notes["fp32_nodes"] == specs["box"].notes["fp32_nodes"] == ["box_conv", "dfl_conv"]
    assert _float_convs(tmp_path / "m-default.onnx") == {"box_conv", "dfl_conv"}
    assert _float_convs(out["dfl"]) == {"dfl_conv"}
    assert _float_convs(out["head"]) == {"box_conv", "cls_conv", "dfl_conv"}
    assert _float_convs(out["none"]) == set()
    # the DFL conv's weights stay float32 initialisers (no DequantizeLinear feeds it at all)
    graph = onnx.load(str(tmp_path / "m-default.onnx")).graph
    producers = {o: n for n in graph.node for o in n.output}
    dfl = next(n for n in graph.node if n.name == "dfl_conv")
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in dfl.input)
    # only the DFL conv's quantisation differs between "dfl" and "none": box outputs agree better with FP32
    y32 = _outputs(fp32, calib)
    err = {k: float(np.abs(_outputs(out[k], calib)[:, :4] - y32[:, :4]).mean()) for k in out}
    assert err["head"] <= err["dfl"] < err["none"] and err["box"] <= err["dfl"]
    assert err["dfl"] < 0.01 * float(np.abs(y32[:, :4]).mean())


def test_default_runs_integer_end_to_end_with_a_float_tail(tmp_path: Path) -> None:
    fp32 = tmp_path / "m.onnx"
    _yolo_like(fp32)
    calib = _frames(tmp_path / "calib", 32)
    # keep_fp32 "dfl": this test is about the op types; the toy's box branch is one conv (box_conv)
    quantize_onnx_int8(fp32, tmp_path / "full.onnx", SPEC, calib, progress=False, keep_fp32="dfl")
    quantize_onnx_int8(fp32, tmp_path / "conv.onnx", SPEC, calib, progress=False, op_types_to_quantize=CONV_OP_TYPES,
                       keep_fp32="dfl")
    # nothing after the output convs is quantised: no QuantizeLinear reads a tail node's output
    graph = onnx.load(str(tmp_path / "full.onnx")).graph
    tail_outputs = {o for n in graph.node if n.name in tail_nodes(fp32) for o in n.output}
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in tail_outputs for n in graph.node)
    # ORT runs the stem's SiLU on uint8 (QLinearSigmoid/QLinearMul) when it is quantised, in float otherwise
    full, conv = _ort_ops(tmp_path / "full.onnx", tmp_path), _ort_ops(tmp_path / "conv.onnx", tmp_path)
    assert full["QLinearConv"] == conv["QLinearConv"] == 3
    assert (full["QLinearSigmoid"], full["QLinearMul"], full["Sigmoid"]) == (1, 1, 1)  # float: the score one
    assert (conv["QLinearSigmoid"], conv["QLinearMul"], conv["Sigmoid"]) == (0, 0, 2)
    assert full["QuantizeLinear"] == 1 and full["QuantizeLinear"] < conv["QuantizeLinear"]
    y32 = _outputs(fp32, calib)
    for path in (tmp_path / "full.onnx", tmp_path / "conv.onnx"):
        y8 = _outputs(path, calib)
        assert np.corrcoef(y32[:, 4].ravel(), y8[:, 4].ravel())[0, 1] > 0.95
        assert np.abs(y32[:, :4] - y8[:, :4]).mean() < 0.05 * float(np.abs(y32[:, :4]).mean())


def test_keep_fp32_and_format_are_checked(tmp_path: Path) -> None:
    fp32 = tmp_path / "m.onnx"
    _yolo_like(fp32)
    calib = _frames(tmp_path / "calib", 32)
    bad = tmp_path / "bad.onnx"
    with pytest.raises(CctvkitError, match=r"bad.onnx: keep_fp32 names unknown nodes \['nope'\]"):
        quantize_onnx_int8(fp32, bad, SPEC, calib, progress=False, keep_fp32=["dfl_conv", "nope"])
    with pytest.raises(CctvkitError, match="unknown keep_fp32 'all'"):
        quantize_onnx_int8(fp32, bad, SPEC, calib, progress=False, keep_fp32="all")
    with pytest.raises(CctvkitError, match="unknown quantisation format 'QLinear'"):
        quantize_onnx_int8(fp32, bad, SPEC, calib, progress=False, quant_format="QLinear")
    assert not bad.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_qoperator_format_runs_and_keeps_the_box_branch_fp32(tmp_path: Path) -> None:
    fp32 = tmp_path / "m.onnx"
    _yolo_like(fp32)
    calib = _frames(tmp_path / "calib", 32)
    spec8 = quantize_onnx_int8(
        fp32, tmp_path / "q.onnx", SPEC, calib, progress=False, quant_format="QOperator"
    )
    assert spec8.notes["format"] == "QOperator"
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)
    assert ops["QLinearConv"] == 2 and ops["Conv"] == 2  # stem, class quantised; the box branch and DFL float
    assert ops["QLinearSigmoid"] == 1 and ops["Sigmoid"] == 1  # the stem's SiLU; the score sigmoid is float
    y32, y8 = _outputs(fp32, calib), _outputs(tmp_path / "q.onnx", calib)
    assert np.corrcoef(y32[:, 4].ravel(), y8[:, 4].ravel())[0, 1] > 0.95


@pytest.mark.slow
def test_toy_detector_default_int8_in_the_edge_runtime(toy_models: dict[str, Path], tmp_path: Path) -> None:
    from edge.detector import Detector
    from export.onnx_export import export_onnx

    fp32_path, int8_path = tmp_path / "detector-fp32.onnx", tmp_path / "detector-int8.onnx"
    spec = export_onnx(toy_models["detector"], fp32_path, task="detect", imgsz=64)
    calib = select_calibration_images(toy_models["detect_yaml"].parent / "images" / "train", n=32)
    spec8 = quantize_onnx_int8(fp32_path, int8_path, spec, calib, progress=False)
    box = box_nodes(fp32_path)
    assert len(box) == 10 and box[-1] == "/model.23/dfl/conv/Conv"  # 3 x 3 box-branch convs + DFL
    assert spec8.notes["fp32_nodes"] == box and _float_convs(int8_path) == set(box)
    assert len(head_nodes(fp32_path)) == 7  # 3 box + 3 class output convs + DFL
    ops = _ort_ops(int8_path, tmp_path)
    n_conv = Counter(n.op_type for n in onnx.load(str(fp32_path)).graph.node)["Conv"]
    # ONNX Runtime quantises the weights of a float Conv that sits between a DQ and a Q itself (its
    # WeightBiasQuantization, per tensor): of the ten, the six inner box convs run as QLinearConv, and the
    # three box output convs and the DFL conv, whose outputs leave the integer graph, run float.
    assert ops["QLinearConv"] == n_conv - 4 and ops["Conv"] == 4
    assert ops["Sigmoid"] == 1 and ops["QuantizeLinear"] == 1  # uint8 from the first Conv to the head

    det32, det8 = Detector(spec, fp32_path, conf=0.0), Detector(spec8, int8_path, conf=0.0)
    worst = 0.0
    for path in calib[:8]:
        frame = cv2.imread(str(path))
        d32, d8 = det32.detect(frame), det8.detect(frame)
        assert len(d8) > 0 and d8.xyxy.dtype == np.float32
        # the top-scoring detection: same place within a few pixels, similar score
        i, j = int(np.argmax(d32.scores)), int(np.argmax(d8.scores))
        worst = max(worst, float(np.abs(d32.xyxy[i] - d8.xyxy[j]).max()))
        assert abs(float(d32.scores[i]) - float(d8.scores[j])) < 0.1
    assert worst < 0.1 * max(frame.shape[:2])
