"""LiteRT quantisation of an FP32 .tflite with ai-edge-quantizer: FP16 weights, INT8 and full-integer INT8.

One min/max calibration of the float model (every tensor) serves every scheme. The calibration samples
are our calibration images through edge.detect.preprocess, i.e. exactly what the device feeds.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edge.errors import CctvkitError
from edge.types import ModelSpec
from export.calibration import ImageCalibrationReader

# What "int8" quantises; "fullint8" is always "all" (int8-only hardware needs every op in int8).
# Demo detector (imgsz 320, vtest pseudo-labels), mAP50-95 against FP32 0.320: "all" 0.197 (300
# calibration images), "head-float" 0.292 (64 images), "conv" 0.317 (300 images). The head's box-distance
# convs, DFL and decode are where int8 rounding moves box edges by pixels; SiLU/Concat requantisation in
# the backbone costs the rest. "conv" pays for it with a quantise/dequantise pair around every conv.
INT8_SCHEMES = {
    "conv": "only Conv/DepthwiseConv/FC int8 (activations requantised around each), detect head float",
    "head-float": "every op int8 except the detect head (box/class convs, DFL, decode)",
    "all": "every op int8, as Ultralytics quantize=8",
}
HEAD_RX = r".*ultralytics\.nn\.modules\.head\.Detect_\d+.*"  # litert-torch names tensors by module path
CALIB_METHOD = "min-max ranges, ai-edge-quantizer static int8 (per-channel weights, per-tensor activations)"


def first_line(e: BaseException) -> str:
    """'Type: first line' of a converter/quantizer exception (their messages run to pages), for one-line errors."""
    return f"{type(e).__name__}: " + (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


@contextlib.contextmanager
def quiet(enabled: bool) -> Iterator[None]:
    """Silence the converter's and quantizer's own prints and tqdm bars unless progress is wanted."""
    if enabled:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


class CalibrationSet:
    """Re-iterable calibration samples (ai-edge-quantizer walks them once to count, once to calibrate).
    Frames are kept as uint8 and turned into the float tensor the device makes (u8 / 255) on the fly."""

    def __init__(self, frames: list[np.ndarray], input_name: str):
        self.frames, self.input_name = frames, input_name

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for u8 in self.frames:
            yield {self.input_name: u8.astype(np.float32) / np.float32(255.0)}

    def __len__(self) -> int:
        return len(self.frames)


def calibration_frames(images: Sequence[Path], spec32: ModelSpec, progress: bool) -> list[np.ndarray]:
    from rich.progress import Progress

    reader = ImageCalibrationReader(images, spec32)
    frames = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("LiteRT calibration images", total=len(images))
        for path in images:
            x = reader.tensor(Path(path))  # float32 = u8 / 255: exactly invertible
            frames.append(np.round(x * 255.0).astype(np.uint8))
            bar.advance(task)
    return frames


def _quantize(src: Path, dst: Path, precision: str, calib: CalibrationSet | None, cache: dict) -> None:
    """fp16 / int8 / fullint8 from the FP32 file; the static calibration is done once and cached."""
    from ai_edge_quantizer import qtyping, quantizer, recipe

    op = qtyping.TFLOperationName
    qt = quantizer.Quantizer(str(src))
    if precision == "fp16":
        fp16 = qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=16, dtype=qtyping.TensorDataType.FLOAT
            ),
            compute_precision=qtyping.ComputePrecision.FLOAT,
            explicit_dequantize=True,
        )
        for name in (op.CONV_2D, op.DEPTHWISE_CONV_2D, op.FULLY_CONNECTED):
            qt.update_quantization_recipe(".*", name, fp16, algorithm_key=recipe.AlgorithmName.FLOAT_CASTING)
        qt.quantize().export_model(str(dst), overwrite=True)
        return
    if "qsvs" not in cache:  # float-model statistics: one calibration over every tensor serves all schemes
        assert calib is not None
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        with warnings.catch_warnings():  # the calibrator keeps every tensor on purpose; it warns that it does
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            qsvs = dict(qt.calibrate({"serving_default": calib}, num_threads=2))
        # Pin the input range to the pixel range 0..1: frames darker or brighter than every calibration
        # frame must not clip, and 1/255 steps with zero point -128 make each pixel value exact.
        name = cache["input_tensor"]
        if name in qsvs:
            qsvs[name] = {k: v for k, v in qsvs[name].items() if k not in ("min", "max")} | {
                "min": np.zeros_like(qsvs[name]["min"]),
                "max": np.ones_like(qsvs[name]["max"]),
            }
        cache["qsvs"] = qsvs
        qt = quantizer.Quantizer(str(src))
    scheme = "all" if precision == "fullint8" else cache["scheme"]
    if scheme == "conv":
        for name in (op.CONV_2D, op.DEPTHWISE_CONV_2D, op.FULLY_CONNECTED):
            qt.add_static_config(".*", name, activation_num_bits=8, weight_num_bits=8)
    else:
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
    if scheme in ("conv", "head-float"):  # no-op for classifiers: HEAD_RX names the detect head only
        qt.update_quantization_recipe(
            HEAD_RX, op.ALL_SUPPORTED, algorithm_key=recipe.AlgorithmName.NO_QUANTIZE
        )
    if precision == "int8":  # Ultralytics' quantize=8 contract: float32 graph input and output
        for name in (op.INPUT, op.OUTPUT):
            qt.update_quantization_recipe(".*", name, algorithm_key=recipe.AlgorithmName.NO_QUANTIZE)
    qt.quantize(calibration_result=cache["qsvs"]).export_model(str(dst), overwrite=True)


def quantize_checked(
    src: Path,
    dst: Path,
    precision: str,
    calib: CalibrationSet | None,
    cache: dict,
    shown: Path,
    metadata: bytes | None,
    progress: bool,
) -> None:
    try:
        with quiet(progress):
            _quantize(src, dst, precision, calib, cache)
    except CctvkitError:
        raise
    except Exception as e:  # the quantizer raises ValueError/RuntimeError naming the op it cannot do
        raise CctvkitError(
            f"LiteRT {precision} quantisation failed ({first_line(e)})",
            shown,
            "export fp32 only (precisions=['fp32']) or use the ONNX/ncnn INT8 export",
        ) from e
    if metadata is not None:  # Ultralytics' names/imgsz travel inside every file, as in the FP32 one
        with zipfile.ZipFile(dst, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("metadata.json", metadata)
