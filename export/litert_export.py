"""Ultralytics .pt -> LiteRT (.tflite) FP32, FP16-weights, INT8 and full-integer INT8, offline, with ModelSpecs.

FP32: Ultralytics' own format="litert" path (litert-torch), which prepares the model as for every export
(fused BatchNorm, raw head without NMS) and divides the detector's box channels by the input size, so
boxes and scores (both 0..1) can share one int8 scale. We ask the converter for a channel-last (NHWC)
input: one transpose less in the graph, and the letterboxed HWC frame goes in as it is.

The other precisions quantise that FP32 file (export/litert_quant.py) with ai-edge-quantizer, the library
Ultralytics' quantize=8 uses (int8 per-channel weights, int8 per-tensor activations, min/max ranges), but
calibrated on our calibration images pushed through edge.detect.preprocess, exactly what the device feeds
(Ultralytics' calibration loader would need a labelled data.yaml and centre-crops classifier images,
which the device does not do). One calibration serves both int8 variants:
- "int8": float32 input and output (Ultralytics' quantize=8 contract). For detectors only the convolutions
  are int8 and the detect head stays float (scheme "conv"): Ultralytics' every-op recipe lost 12 points
  of mAP50-95 on the demo detector, "conv" 0.3 (see litert_quant.INT8_SCHEMES);
- "fullint8": every op int8, int8 input and output with their scale/zero point (what int8-only
  accelerators need), at that accuracy cost. The input range is pinned to 0..1 (scale 1/255, zero
  point -128), so every pixel value is exact, whatever the calibration frames' extremes were.
"fp16" stores conv weights as float16 (half the file); LiteRT's CPU kernels compute in float32.

All files are written in a temp folder beside out_dir and renamed in only after each one loaded in the
LiteRT interpreter and, for FP32, matched the PyTorch model; nothing half-written stays behind.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import CctvkitError
from edge.types import ModelSpec, person_class_ids
from export.calibration import MIN_IMAGES, ImageCalibrationReader
from export.formats.litert import EXTRA_FIX, TOOLCHAIN, unsupported_host
from export.litert_quant import (
    CALIB_METHOD,
    INT8_SCHEMES,
    CalibrationSet,
    calibration_frames,
    first_line,
    quantize_checked,
    quiet,
)
from export.ncnn_export import cosine
from export.onnx_export import check_person_model, expected_output_shape

PRECISIONS = ("fp32", "fp16", "int8", "fullint8")
FP32_MAX_REL_ERR = 1e-3  # FP32 LiteRT (XNNPACK) vs PyTorch, relative L2 error of the output


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in (v.split("+")[0].split(".") + ["0", "0"])[:3] if p.isdigit())


def check_litert_toolchain() -> dict[str, str]:
    """The LiteRT export's packages are importable and new enough; returns {pip name: version}."""
    why = unsupported_host()
    if why is not None:
        raise CctvkitError(why, fix="export on the workstation and copy the .tflite files to the device")
    found = {}
    for module, (pip_name, lowest) in TOOLCHAIN.items():
        try:
            __import__(module)
            found[pip_name] = version(pip_name)
        except (ImportError, PackageNotFoundError) as e:
            raise CctvkitError(f"{pip_name} is not installed ({type(e).__name__}: {e})", fix=EXTRA_FIX) from e
        if _version_tuple(found[pip_name]) < _version_tuple(lowest):
            raise CctvkitError(f"{pip_name} {found[pip_name]} is older than {lowest}", fix=EXTRA_FIX)
    return found


@contextlib.contextmanager
def _channel_last_conversion() -> Iterator[list[tuple[int, ...]]]:
    """While inside, litert_torch.convert wraps the model so its input is NHWC (the model still sees
    NCHW); yields the list of input shapes the converter was called with."""
    import litert_torch

    original, calls = litert_torch.convert, []

    def convert(module: Any, sample_args: tuple[Any, ...], *args: Any, **kwargs: Any) -> Any:
        x = sample_args[0]
        calls.append(tuple(x.shape))
        wrapped = litert_torch.to_channel_last_io(module, args=[0])
        return original(wrapped, (x.permute(0, 2, 3, 1).contiguous(), *sample_args[1:]), *args, **kwargs)

    litert_torch.convert = convert
    try:
        yield calls
    finally:
        litert_torch.convert = original


def _interpreter(path: Path, shown: Path) -> Any:
    from edge.backends.litert import load_interpreter

    try:
        return load_interpreter(str(path), 1)
    except Exception as e:  # a graph the runtime cannot run
        raise CctvkitError(
            f"LiteRT cannot load the export ({e})".replace("\n", " "), shown, "re-export"
        ) from e


def _run(interp: Any, x: np.ndarray) -> np.ndarray:
    """One inference with float input x; int8 models get it quantised and their output dequantised."""
    from edge.backends.litert import quant_of

    ind, outd = interp.get_input_details()[0], interp.get_output_details()[0]
    q = quant_of(ind)
    if q is not None:
        x = np.clip(np.round(x / q.scale) + q.zero_point, -128, 127).astype(ind["dtype"])
    interp.set_tensor(ind["index"], x)
    interp.invoke()
    y = interp.get_tensor(outd["index"])
    qo = quant_of(outd)
    return (y.astype(np.float32) - qo.zero_point) * qo.scale if qo is not None else y


def _torch_output(pt_model: Any, x_nhwc: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = pt_model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
    return (y[0] if isinstance(y, (list, tuple)) else y).numpy()


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-12))


def check_fp32_against_torch(
    tfl: np.ndarray, ref: np.ndarray, task: str, imgsz: tuple[int, int], shown: Path
) -> tuple[bool, float]:
    """Decide from the outputs whether the detector's boxes are divided by the input size, and check the
    FP32 export reproduces the PyTorch model. Returns (boxes_normalized, relative error)."""
    if tfl.shape != ref.shape:
        raise CctvkitError(f"LiteRT output {tfl.shape} but PyTorch gives {ref.shape}", shown, "re-export")
    if task != "detect":
        err = _rel_err(tfl, ref)
        normalized = False
    else:
        h, w = imgsz
        wh = np.array([w, h, w, h], np.float32).reshape(1, 4, 1)
        err_norm = _rel_err(tfl[:, :4], ref[:, :4] / wh)
        err_pix = _rel_err(tfl[:, :4], ref[:, :4])
        normalized = err_norm < err_pix
        err = max(min(err_norm, err_pix), _rel_err(tfl[:, 4:], ref[:, 4:]))
    if not err < FP32_MAX_REL_ERR:
        raise CctvkitError(
            f"the FP32 LiteRT model differs from the PyTorch model (relative error {err:.2e})",
            shown,
            "an operator was converted wrongly by litert-torch; use the ONNX or ncnn export",
        )
    return normalized, err


def _spec_for(path: Path, shown: Path, base: ModelSpec, precision: str) -> ModelSpec:
    """The spec of a written file: layout, dtype and quantisation read from the interpreter."""
    from edge.backends.litert import quant_of

    interp = _interpreter(path, shown)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    h, w = base.imgsz
    shape = tuple(int(d) for d in ins[0]["shape"]) if len(ins) == 1 else ()
    want_out = expected_output_shape(base.task, base.imgsz, len(base.class_names))
    if shape != (1, h, w, 3) or len(outs) != 1 or tuple(int(d) for d in outs[0]["shape"]) != want_out:
        raise CctvkitError(
            f"LiteRT model has inputs {[tuple(i['shape']) for i in ins]} and outputs "
            f"{[tuple(o['shape']) for o in outs]}, expected one (1, {h}, {w}, 3) input and one {want_out} output",
            shown,
            "export a YOLO11/YOLOv8-style detector or classifier without NMS, with litert-torch >= 0.10",
        )
    dtype = np.dtype(ins[0]["dtype"]).name
    want_dtype = "int8" if precision == "fullint8" else "float32"
    if dtype != want_dtype:
        raise CctvkitError(
            f"{precision} model takes {dtype} input, expected {want_dtype}", shown, "re-export"
        )
    return replace(
        base,
        precision="int8" if precision == "fullint8" else precision,
        path=shown.name,
        layout="NHWC",
        input_dtype=dtype,  # type: ignore[arg-type]  # float32 or int8, checked above
        input_quant=quant_of(ins[0]),
        output_quant=quant_of(outs[0]),
        notes=dict(base.notes),
    )


def _convert_fp32(model: Any, pt_path: Path, imgsz: tuple[int, int], progress: bool) -> tuple[Path, list]:
    """Ultralytics' format="litert" export with an NHWC input; returns (file, converter input shapes)."""
    from export.offline import RAW_HEAD_NMS, verbosity

    try:
        with verbosity(progress), quiet(progress), _channel_last_conversion() as calls:
            produced = Path(model.export(format="litert", imgsz=imgsz, nms=RAW_HEAD_NMS, device="cpu",
                                             batch=1))
    except CctvkitError:
        raise
    except Exception as e:  # litert-torch raises many types for operators it cannot lower
        raise CctvkitError(
            f"LiteRT conversion failed ({first_line(e)})",
            pt_path,
            "export a standard Ultralytics YOLO11/YOLOv8 model, or use the ONNX/ncnn export",
        ) from e
    return produced, [list(c) for c in calls]


def _check_choices(precisions: Sequence[str], int8_scheme: str | None, task: str) -> str:
    """Known precisions and int8 scheme; returns the scheme ("conv" for detectors, "all" for classifiers
    when none is given)."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise CctvkitError(f"unknown LiteRT precision(s) {bad}", fix=f"choose from: {', '.join(PRECISIONS)}")
    int8_scheme = int8_scheme or ("conv" if task == "detect" else "all")
    if int8_scheme not in INT8_SCHEMES:
        raise CctvkitError(
            f"unknown LiteRT int8 scheme '{int8_scheme}'", fix=f"choose one of: {', '.join(INT8_SCHEMES)}"
        )
    return int8_scheme


def _variant_spec(p: str, written: Path, final: Path, base: ModelSpec, calib: CalibrationSet | None,
                  interp32: Any, int8_scheme: str) -> ModelSpec:
    """The spec of one written precision, with what its notes say about how it was made."""
    spec = _spec_for(written, final, base, p)
    if p in ("int8", "fullint8"):
        assert calib is not None
        interp = _interpreter(written, final)
        probes = [f.astype(np.float32) / np.float32(255.0) for f in calib.frames[:8]]
        spec.notes.update(
            calibration_method=CALIB_METHOD,
            calibration_images=len(calib),
            calibration_preprocessing="edge.detect.preprocess (letterbox / squash), RGB / 255",
            cosine_vs_fp32_min=round(
                min(cosine(_run(interp, xi), _run(interp32, xi)) for xi in probes), 5
            ),
        )
        scheme = "all" if p == "fullint8" else int8_scheme
        spec.notes.update(int8_scheme=scheme, int8_ops=INT8_SCHEMES[scheme])
        if p == "fullint8":
            spec.notes["input_range"] = "pinned to 0..1: int8 = pixel - 128"
    elif p == "fp16":
        spec.notes["weights"] = "float16 conv weights (LiteRT CPU kernels compute in float32)"
    return spec


def export_litert(
    pt_path: Path,
    out_dir: Path,
    *,
    task: str,
    imgsz: int | tuple[int, int],
    calib_images: Sequence[Path],
    name_prefix: str,
    precisions: Sequence[str] = PRECISIONS,
    int8_scheme: str | None = None,
    progress: bool = False,
    sha256: str | None = None,
) -> list[tuple[str, ModelSpec, list[Path]]]:
    """Export an Ultralytics .pt to LiteRT; returns [(precision label, ModelSpec, [file])] in `precisions`
    order, labels from PRECISIONS ("fullint8" has spec.precision "int8" and int8 input/output).

    Writes out_dir/<name_prefix>-<label>.tflite. ModelSpec.path is the file name (the caller makes it
    run-relative); sha256 is left for the manifest. Input: RGB 0..1 (letterboxed for detect, squashed for
    classify), NHWC. Output: (1, 4+nc, anchors) cx,cy,w,h divided by the input width/height
    (boxes_normalized, checked against PyTorch) + class scores, or (1, nc) probabilities.
    int8_scheme: what the "int8" file quantises (INT8_SCHEMES); default "conv" for detectors, "all" for
    classifiers (no detect head to keep float, and equal accuracy on the demo); "fullint8" is always "all".
    sha256: what the run's train stage recorded for pt_path; checked on the private copy that is loaded.
    """
    from export.offline import load_model

    pt_path, out_dir = Path(pt_path), Path(out_dir)
    int8_scheme = _check_choices(precisions, int8_scheme, task)
    (h, w), class_names = check_person_model(pt_path, task, imgsz, sha256)
    quantized = [p for p in precisions if p in ("int8", "fullint8")]
    if quantized and len(calib_images) < MIN_IMAGES:
        raise CctvkitError(
            f"only {len(calib_images)} calibration images for LiteRT INT8",
            pt_path,
            f"pass at least {MIN_IMAGES} (select_calibration_images)",
        )
    versions = check_litert_toolchain()
    finals = {p: out_dir / f"{name_prefix}-{p}.tflite" for p in PRECISIONS}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name_prefix}-tflite.", dir=out_dir))
    try:
        local_pt = tmp / "model.pt"
        shutil.copy2(pt_path, local_pt)
        produced, calls = _convert_fp32(load_model(task, local_pt, sha256=sha256, shown=pt_path), pt_path,
                                        (h, w), progress)
        metadata = zipfile.ZipFile(produced).read("metadata.json") if zipfile.is_zipfile(produced) else None
        base = ModelSpec(
            task=task,  # type: ignore[arg-type]
            format="tflite",
            precision="fp32",
            path="",
            imgsz=(h, w),
            class_names=class_names,
            person_class=class_names.index("person"),
            person_classes=person_class_ids(class_names),
            decoding="yolov8" if task == "detect" else "probs",
            notes={
                "exporter": "ultralytics format=litert (litert-torch), NHWC input",
                **{f"{k}_version": v for k, v in versions.items()},
                "source": pt_path.name,
                "nms": False,
                "converter_input_shapes": calls,
            },
        )
        spec32 = _spec_for(produced, finals["fp32"], base, "fp32")

        # FP32 must reproduce PyTorch on a real frame; the comparison also tells whether boxes are normalised.
        x = (
            ImageCalibrationReader(calib_images[:1], spec32).tensor(Path(calib_images[0]))
            if len(calib_images)
            else np.random.default_rng(0).uniform(0, 1, (1, h, w, 3)).astype(np.float32)
        )
        interp32 = _interpreter(produced, finals["fp32"])
        torch_model = load_model(task, local_pt, sha256=sha256, shown=pt_path).model.float().eval()
        normalized, err = check_fp32_against_torch(
            _run(interp32, x), _torch_output(torch_model, x), task, (h, w), pt_path
        )
        base = replace(
            spec32,
            boxes_normalized=normalized,
            notes={**spec32.notes, "rel_err_vs_pytorch": float(f"{err:.3g}")},
        )
        if normalized:
            base.notes["boxes"] = "cx,cy,w,h divided by input width/height (Ultralytics LiteRT convention)"

        written: dict[str, Path] = {"fp32": produced}
        cache: dict[str, Any] = {
            "input_tensor": interp32.get_input_details()[0]["name"],
            "scheme": int8_scheme,
        }
        calib = None
        if quantized:
            signature_input = interp32.get_signature_list()["serving_default"]["inputs"][0]
            calib = CalibrationSet(calibration_frames(calib_images, spec32, progress), signature_input)
        for p in precisions:
            if p != "fp32":
                written[p] = tmp / f"{p}.tflite"
                quantize_checked(produced, written[p], p, calib, cache, finals[p], metadata, progress)

        results = [(p, _variant_spec(p, written[p], finals[p], base, calib, interp32, int8_scheme), [finals[p]])
                   for p in precisions]
        for p in precisions:
            written[p].chmod(0o644)  # the quantizer writes 0755 files
            written[p].replace(finals[p])  # same file system: atomic renames
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
