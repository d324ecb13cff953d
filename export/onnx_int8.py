"""ONNX FP32 -> INT8 (QDQ) with ONNX Runtime static quantisation, calibrated on the device's preprocessing.

Weights S8 per channel, activations U8 or S8. By default every operator ONNX Runtime has an integer
kernel for is quantised (DEFAULT_OP_TYPES): with only Conv/MatMul quantised, each YOLO layer ran
QLinearConv -> DequantizeLinear -> Sigmoid -> Mul -> QuantizeLinear (the FP32 model fuses SiLU into its
Conv), and those four float passes ate the int8 gain; with SiLU, Add, Concat, pooling and resizing
quantised too, ONNX Runtime runs uint8 from the first Conv to the head (YOLO11n: 1 QuantizeLinear, 6
DequantizeLinear instead of 79 and 184). Demo detector (320, AVX2 without VNNI, ORT 1.31, interleaved,
under CPU contention): Conv-only 0.77-0.82x FP32 at 1 thread, 0.91-0.99x at 2; default 0.62-0.70x and
0.68-0.78x; mAP50-95 unchanged (0.3196 vs 0.3197). CONV_OP_TYPES is the old Conv/MatMul-only choice.

Two parts stay float whatever the op types:
- the tail after the output convolutions (tail_nodes): the final Concat joins box coordinates
  (0..imgsz pixels) and class scores (0..1); under one INT8 scale the scores round to 0. The model's
  input and output tensors are float32 too.
- keep_fp32 nodes; by default the head's box branch with the DFL conv (box_nodes): quantised, the DFL conv
  alone cost the demo run 1.5 points of mAP50-95 and the rest of the box branch a warm-started student 3.1
  more; kept float, they cost 4 % of the INT8 model's latency (the thermal student, 1 thread, 10.45 -> 10.90 ms).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.types import ModelSpec
from export.calibration import ImageCalibrationReader
from export.onnx_export import check_onnx_io

ACTIVATION_TYPES = ("U8", "S8")
METHODS = ("MinMax", "Entropy", "Percentile")
QUANT_FORMATS = ("QDQ", "QOperator")
CONV_OP_TYPES = ("Conv", "MatMul")
# ONNX Runtime CPU fuses each of these, between QDQ pairs, into an integer kernel (QLinearSigmoid/Mul/Add/
# Concat) or drops the QDQ pair around it (MaxPool, Resize, Split, Slice, Reshape, Transpose).
DEFAULT_OP_TYPES = (
    *CONV_OP_TYPES,
    "Sigmoid",
    "Mul",
    "Add",
    "Concat",
    "MaxPool",
    "Resize",
    "Split",
    "Slice",
    "Reshape",
    "Transpose",
    "Softmax",
)
LINEAR_OPS = frozenset({"Conv", "MatMul", "Gemm"})  # what head_nodes looks for
CHUNK = 16  # calibration images per ONNX Runtime collect pass (bounds its memory)


def _choice(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise CctvkitError(f"unknown {what} '{value}'", fix=f"choose one of: {', '.join(valid)}")
    return value


def check_float_head(path: Path, shown: Path | None = None) -> None:
    """The graph outputs must not be produced by DequantizeLinear (a quantised head zeroes the scores).
    `shown`: the path named in errors (the final path while checking a temp file)."""
    graph = _graph(path)
    producers = {out: node for node in graph.node for out in node.output}
    for output in graph.output:
        node = producers.get(output.name)
        if node is not None and node.op_type == "DequantizeLinear":
            raise CctvkitError(
                f"output '{output.name}' is quantised (its producer is DequantizeLinear)",
                shown or path,
                "keep the head's tail float (float_tail=True) or quantise only "
                f"{', '.join(CONV_OP_TYPES)} (op_types_to_quantize)",
            )


def _graph(model: Path | Any) -> Any:
    """The onnx.GraphProto of a file (onnx imported lazily), or `model` itself when it already is one, so
    the node finders below can share one loaded graph instead of each reading the file again."""
    if not isinstance(model, (str, Path)):
        return model
    import onnx

    return onnx.load(str(model), load_external_data=False).graph


def dfl_nodes(path: Path | Any) -> list[str]:
    """Conv/MatMul nodes fed by a Softmax: the YOLO head's DFL conv, which turns 16 bin probabilities into
    their expected value (weights 0..15, in strides). Quantised, its output steps by 15/255 of a stride
    (up to 1.9 px at stride 32) and every box edge moves: on the demo run this one node cost 1.5 points of
    mAP50-95 (0.305 vs 0.320 FP32); kept float, 0.327. It is 0.02% of YOLO11n's MACs at 320."""
    graph = _graph(path)
    producers = {out: node for node in graph.node for out in node.output}
    return [
        n.name
        for n in graph.node
        if n.op_type in LINEAR_OPS
        and n.input
        and getattr(producers.get(n.input[0]), "op_type", "") == "Softmax"
    ]


def head_nodes(path: Path | Any) -> list[str]:
    """The model's output convolutions: Conv/MatMul/Gemm nodes met first walking back from the graph
    outputs, and walking on through a DFL conv (dfl_nodes) to the box convs before it: a YOLO detector's
    box and class 1x1 convs and its DFL conv, a classifier's final Linear."""
    graph = _graph(path)
    producers = {out: node for node in graph.node for out in node.output}
    dfl = set(dfl_nodes(graph))
    found: set[str] = set()
    seen: set[str] = set()
    stack = [o.name for o in graph.output]
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in LINEAR_OPS:
            found.add(node.name)
            if node.name not in dfl:
                continue
        stack.extend(node.input)
    return [n.name for n in graph.node if n.name in found]  # in graph order


def tail_nodes(path: Path | Any) -> list[str]:
    """Nodes after the output convolutions (head_nodes, not included): a detector's DFL decoding, score
    Sigmoid and the box + score Concat; a classifier's Softmax."""
    graph = _graph(path)
    head = set(head_nodes(graph))
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: set[str] = set()
    stack = [out for node in graph.node if node.name in head for out in node.output]
    while stack:
        for node in consumers.get(stack.pop(), []):
            if node.name not in found:
                found.add(node.name)
                stack.extend(node.output)
    return [n.name for n in graph.node if n.name in found - head]


def box_nodes(path: Path | Any) -> list[str]:
    """The box branch of a YOLO head: the Conv/MatMul nodes whose output reaches a box output conv and no
    class output conv (YOLO11's and YOLO26's cv2.* convs), plus the DFL conv where there is one. Class
    output convs are the head convs whose output meets a Sigmoid (the class scores); the other head convs
    are the box outputs (a DFL head's 64 bin logits, YOLO26's 4 DFL-free distances). Quantised, the DFL
    logits lose the fine differences the expected value is made of: a YOLO11n student warm-started from
    COCO weights (thermal-harbour teacher arm, 240 real test frames) lost 3.4 mAP50-95 points INT8 with
    only the DFL conv float and 0.3 with the box branch float (benchmarks/int8_variants.py), at the same
    mAP50. In the file all of them stay float. ONNX Runtime then quantises the weights of the inner ones
    itself (WeightBiasQuantization: a float Conv between a DQ and a Q gets per-tensor int8 weights), so at
    run time the box output convs and the DFL conv run float; the figures above are measured that way.
    A model without both kinds of output conv (a classifier) has no box branch: []."""
    graph = _graph(path)
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_name = {n.name: n for n in graph.node}
    dfl = set(dfl_nodes(graph))

    def meets_sigmoid(name: str) -> bool:
        seen: set[str] = set()
        stack = list(by_name[name].output)
        while stack:
            for node in consumers.get(stack.pop(), []):
                if node.op_type == "Sigmoid":
                    return True
                if node.name not in seen and node.op_type not in LINEAR_OPS:
                    seen.add(node.name)
                    stack.extend(node.output)
        return False

    def ancestors(names: set[str]) -> set[str]:
        found: set[str] = set()
        stack = [i for n in graph.node if n.name in names for i in n.input]
        while stack:
            node = producers.get(stack.pop())
            if node is not None and node.name not in found:
                found.add(node.name)
                stack.extend(node.input)
        return found

    heads = set(head_nodes(graph))
    class_heads = {n for n in heads - dfl if meets_sigmoid(n)}
    box_heads = heads - class_heads
    if not class_heads or not box_heads:
        return []
    to_class = ancestors(class_heads) | class_heads
    to_box = ancestors(box_heads) | box_heads
    keep = {n.name for n in graph.node if n.op_type in LINEAR_OPS and n.name in to_box - to_class} | dfl
    return [n.name for n in graph.node if n.name in keep]


KEEP_CHOICES: dict[str, Callable[[Any], list[str]]] = {
    "dfl": dfl_nodes,
    "box": box_nodes,
    "head": head_nodes,
    "none": lambda path: [],
}


def _resolve_keep(keep_fp32: str | Sequence[str], pre: Any, shown: Path) -> list[str]:
    if isinstance(keep_fp32, str):
        if keep_fp32 not in KEEP_CHOICES:
            raise CctvkitError(
                f"unknown keep_fp32 '{keep_fp32}'", fix=f"use one of {', '.join(KEEP_CHOICES)} or node names"
            )
        return KEEP_CHOICES[keep_fp32](pre)
    names = {n.name for n in _graph(pre).node}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise CctvkitError(
            f"keep_fp32 names unknown nodes {unknown}", shown, "use node names from the ONNX graph"
        )
    return list(keep_fp32)


def quantize_onnx_int8(
    fp32_path: Path,
    out_path: Path,
    spec: ModelSpec,
    calib_images: Sequence[Path],
    *,
    activation_type: str = "U8",
    method: str = "MinMax",
    op_types_to_quantize: Sequence[str] = DEFAULT_OP_TYPES,
    per_channel: bool = True,
    reduce_range: bool = True,
    progress: bool = True,
    keep_fp32: str | Sequence[str] = "box",
    float_tail: bool = True,
    quant_format: str = "QDQ",
) -> ModelSpec:
    """Quantise an FP32 ONNX model (made by export_onnx, described by `spec`) to INT8 at out_path.

    Input and output stay float32, so the returned spec differs only in precision, path, sha256 and notes.
    reduce_range (7-bit weights): x86 CPUs without VNNI saturate U8xS8 products in ONNX Runtime; measured
    on a 15-epoch YOLO11n (320), full-range U8 gave score correlation 0.95 vs FP32 on x86, reduce_range 0.997.
    The same file then behaves alike on the workstation (bench) and on the Pi (ARM has no saturation).
    activation_type "S8": ONNX Runtime on x86 fuses S8 QDQ Convs into integer kernels only with the
    session option session.qdqisint8allowed=1 (and then runs slow generic S8S8 code); without it most
    Convs run dequantised in float, slower than FP32. S8 is for ARM, where it is ORT's native choice.
    keep_fp32: "box" (default: the head's box branch and the DFL conv, box_nodes), "dfl" (the DFL conv only),
    "head" (every output conv, head_nodes), "none", or node names; they stay float. float_tail: keep tail_nodes float whatever op_types_to_quantize says.
    quant_format: "QDQ" (default) or "QOperator" (QLinearConv etc. written into the file).
    out_path is written through a temp file and a rename: complete or absent.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    _choice(activation_type, ACTIVATION_TYPES, "activation type")
    _choice(method, METHODS, "calibration method")
    _choice(quant_format, QUANT_FORMATS, "quantisation format")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise CctvkitError("FP32 ONNX model not found", fp32_path, "run export_onnx first")
    if spec.precision != "fp32" or spec.input_dtype != "float32":
        raise CctvkitError(
            f"expected an fp32 model spec, got {spec.precision}", fp32_path, "pass the FP32 spec"
        )
    if not calib_images:
        raise CctvkitError("no calibration images", fp32_path, "pass select_calibration_images(...)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        pre = tmp / "pre.onnx"
        # Shape inference (and constant folding) so every Conv/MatMul tensor has a known shape to quantise.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        staged = tmp / "int8.onnx"
        graph = _graph(pre)  # read once for both node finders
        keep = _resolve_keep(keep_fp32, graph, out_path)
        tail = tail_nodes(graph) if float_tail else []
        with _progress(progress, len(calib_images)) as advance:
            reader = ImageCalibrationReader(calib_images, spec, input_name=_input_name(pre), on_image=advance)
            quantize_static(
                str(pre),
                str(staged),
                reader,
                quant_format=getattr(QuantFormat, quant_format),
                op_types_to_quantize=list(op_types_to_quantize),
                nodes_to_exclude=keep + [n for n in tail if n not in keep],
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8 if activation_type == "U8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={
                    "ActivationSymmetric": activation_type == "S8",
                    "WeightSymmetric": True,
                    # Calibrate in chunks: ONNX Runtime otherwise keeps every activation of every image
                    # in memory (Percentile, 100 images at 320: 5 GB). Works for all three methods.
                    "CalibStridedMinMax": calibration_chunk(len(calib_images)),
                },
            )
        int8 = ModelSpec.from_json(
            {
                **spec.to_json(),
                "precision": "int8",
                "path": out_path.name,
                "sha256": "",
                "notes": {
                    **spec.notes,
                    "quantizer": "onnxruntime.quantization.quantize_static",
                    "format": quant_format,
                    "calibration_method": method,
                    "calibration_images": len(calib_images),
                    "activation_type": activation_type,
                    "weight_type": "S8",
                    "per_channel": per_channel,
                    "reduce_range": reduce_range,
                    "op_types_quantized": list(op_types_to_quantize),
                    "fp32_nodes": keep,
                    "float_tail": float_tail,
                },
            }
        )
        check_float_head(staged, shown=out_path)
        check_onnx_io(staged, int8, shown=out_path)
        staged.replace(out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelSpec.from_json({**int8.to_json(), "sha256": sha256_file(out_path)})


def calibration_chunk(n: int, most: int = CHUNK) -> int:
    """The largest divisor of n up to `most` (ONNX Runtime's chunked calibration needs one)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def _input_name(path: Path) -> str:
    graph = _graph(path)
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over calibration images; yields the per-image advance callable."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("INT8 calibration", total=total)
        yield lambda: bar.advance(task)
