"""Builders for tiny real model files (ONNX via the onnx helper API, ncnn .param/.bin by hand)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.types import ModelSpec, QuantParams

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def build_const_onnx(
    path: Path,
    out: np.ndarray,
    imgsz: tuple[int, int] = (64, 64),
    quant: QuantParams | None = None,
    metadata: dict[str, str] | None = None,
    dynamic: bool = False,
) -> Path:
    """An ONNX model whose output is the fixed tensor `out` whatever the image (out + 0 * mean(image)), so
    the decoder sees exactly the head values a test chose. With quant the output is QuantizeLinear'd int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = imgsz
    in_shape: list[int | str] = ["batch", 3, "height", "width"] if dynamic else [1, 3, h, w]
    inits = [
        numpy_helper.from_array(np.asarray(out, np.float32), "C"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
    ]
    if quant is None:
        nodes.append(helper.make_node("Add", ["z", "C"], ["output0"]))
        out_type = TensorProto.FLOAT
    else:
        inits += [
            numpy_helper.from_array(np.array(quant.scale, np.float32), "scale"),
            numpy_helper.from_array(np.array(quant.zero_point, np.int8), "zp"),
        ]
        nodes.append(helper.make_node("Add", ["z", "C"], ["y"]))
        nodes.append(helper.make_node("QuantizeLinear", ["y", "scale", "zp"], ["output0"]))
        out_type = TensorProto.INT8
    graph = helper.make_graph(
        nodes,
        "const_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output0", out_type, list(out.shape))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime >= 1.14 reads
    for k, v in (metadata or {}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def build_ncnn_conv(
    stem: Path, weight: np.ndarray, bias: np.ndarray, imgsz: tuple[int, int]
) -> tuple[Path, Path]:
    """Input (3, H, W) -> 1x1 Convolution (weight (O, 3), bias (O,)) -> Reshape to (O, H*W): a YOLO-shaped
    head (1, O, A) written in ncnn's text .param format with its .bin."""
    h, w = imgsz
    o = weight.shape[0]
    param = stem.with_suffix(".param")
    binf = stem.with_suffix(".bin")
    param.write_text(
        "7767517\n"
        "3 3\n"
        f"Input            in0      0 1 in0 0={w} 1={h} 2=3\n"
        f"Convolution      conv0    1 1 in0 c0 0={o} 1=1 11=1 5=1 6={weight.size}\n"
        f"Reshape          reshape0 1 1 c0 out0 0={h * w} 1={o}\n"
    )
    # Convolution weights carry a 4-byte storage tag (0 = raw float32); the bias follows untagged.
    binf.write_bytes(
        np.uint32(0).tobytes() + weight.astype(np.float32).tobytes() + bias.astype(np.float32).tobytes()
    )
    return param, binf


def head_spec(
    path: Path,
    nc: int,
    imgsz: tuple[int, int] = (64, 64),
    fmt: str = "onnx",
    **kw: object,
) -> ModelSpec:
    return ModelSpec(
        task="detect",
        format=fmt,
        precision="fp32",
        path=str(path),
        imgsz=imgsz,
        class_names=[f"c{i}" for i in range(nc)],
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def const_onnx() -> Callable[..., Path]:
    return build_const_onnx


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "models").is_dir():
        pytest.skip("needs ../shared/data")
    return SHARED


@pytest.fixture
def ncnn_conv() -> Callable[..., tuple[Path, Path]]:
    return build_ncnn_conv


@pytest.fixture
def make_spec() -> Callable[..., ModelSpec]:
    return head_spec
