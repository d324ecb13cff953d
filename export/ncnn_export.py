"""Ultralytics .pt -> ncnn .param/.bin (FP32 or FP16 weights) through pnnx, offline, with its ModelSpec.

Ultralytics' own format="ncnn" pins one pnnx release and asks pip for it when another is installed, so
we take the two steps ourselves: Ultralytics writes the TorchScript trace (format="torchscript", which
prepares the model exactly as its ncnn export does: fused BatchNorm, raw head without NMS), and the pnnx
binary from the installed `pnnx` wheel turns it into ncnn files. Nothing is downloaded.

The files appear in out_dir only after ncnn has loaded them and their output matched the TorchScript
model on a test input; the .bin is renamed into place before the .param, so a .param that exists always
has its weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import sha256_file
from edge.backends.ncnn import parse_param_blobs
from edge.errors import CctvkitError
from edge.types import ModelSpec, person_class_ids
from export.onnx_export import check_person_model, expected_output_shape

PNNX_TIMEOUT_S = 900  # yolo11n takes ~2 s; a hung pnnx must not hang the export stage
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999}  # ncnn vs TorchScript output on one test input


def pnnx_binary() -> Path:
    """The pnnx executable shipped inside the `pnnx` wheel."""
    try:
        import pnnx
    except ImportError as e:
        raise CctvkitError("the pnnx package is not installed", fix="pip install pnnx") from e
    exe = Path(pnnx.EXEC_PATH)
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise CctvkitError(
            "the pnnx wheel has no runnable pnnx binary", exe, "reinstall pnnx (pip install -U pnnx)"
        )
    return exe


def run_pnnx(torchscript: Path, imgsz: tuple[int, int], fp16: bool, work: Path) -> tuple[Path, Path]:
    """pnnx on a TorchScript file -> (param, bin) in `work` (pnnx also leaves its debug files there)."""
    h, w = imgsz
    param, weights = work / "model.ncnn.param", work / "model.ncnn.bin"
    cmd = [
        str(pnnx_binary()),
        str(torchscript),
        f"inputshape=[1,3,{h},{w}]f32",
        "device=cpu",
        f"fp16={int(fp16)}",
        f"ncnnparam={param}",
        f"ncnnbin={weights}",
        f"ncnnpy={work / 'model_ncnn.py'}",
        f"pnnxparam={work / 'model.pnnx.param'}",
        f"pnnxbin={work / 'model.pnnx.bin'}",
        f"pnnxpy={work / 'model_pnnx.py'}",
        f"pnnxonnx={work / 'model.pnnx.onnx'}",
    ]
    try:
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise CctvkitError(f"pnnx did not finish in {PNNX_TIMEOUT_S} s", torchscript, "retry") from e
    if r.returncode != 0 or not param.is_file() or not weights.is_file():
        tail = " | ".join((r.stderr + r.stdout).strip().splitlines()[-3:])[:300]
        raise CctvkitError(
            f"pnnx failed (exit {r.returncode}): {tail}",
            torchscript,
            "check that the model is a standard Ultralytics YOLO detector/classifier",
        )
    return param, weights


def run_ncnn(param: Path, weights: Path, x: np.ndarray, fp16: bool = False, threads: int = 1) -> np.ndarray:
    """Output of a single-input, single-output ncnn model on NCHW float input x (batch axis restored)."""
    import ncnn

    in_names, out_names = parse_param_blobs(param)
    net: Any = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise CctvkitError("ncnn cannot load the model", param, "re-export the model")
    ex = net.create_extractor()
    ex.input(in_names[0], ncnn.Mat(np.ascontiguousarray(x[0], np.float32)))
    ret, mat = ex.extract(out_names[0])
    if ret != 0:
        raise CctvkitError(f"ncnn could not compute '{out_names[0]}'", param, "re-export the model")
    return np.array(mat)[None]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else float(np.array_equal(a, b))


def check_ncnn(
    param: Path, weights: Path, spec: ModelSpec, reference: Any | None, shown: Path
) -> dict[str, float]:
    """ncnn loads the pair and its output has the spec's shape; with a TorchScript `reference`, the
    output on a fixed random input must match it (cosine). Returns {"cosine_vs_torchscript": ...}."""
    h, w = spec.imgsz
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, h, w)).astype(np.float32)
    y = run_ncnn(param, weights, x, fp16=spec.precision == "fp16")
    want = expected_output_shape(spec.task, spec.imgsz, len(spec.class_names))
    if y.shape != want:
        raise CctvkitError(
            f"ncnn output is {y.shape}, expected {want}",
            shown,
            "export without NMS from a YOLO11/YOLOv8-style model",
        )
    if reference is None:
        return {}
    import torch

    with torch.no_grad():
        ref = reference(torch.from_numpy(x))
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    cos = cosine(y, ref)
    if cos < MIN_COSINE[spec.precision]:
        raise CctvkitError(
            f"ncnn output differs from the TorchScript model (cosine {cos:.6f} < {MIN_COSINE[spec.precision]})",
            shown,
            "an operator was converted wrongly by pnnx; try another pnnx version or use ONNX",
        )
    return {"cosine_vs_torchscript": round(cos, 6)}


def export_ncnn(
    pt_path: Path,
    out_dir: Path,
    *,
    task: str,
    imgsz: int | tuple[int, int],
    fp16: bool = False,
    name: str | None = None,
    progress: bool = False,
    sha256: str | None = None,
) -> ModelSpec:
    """Export an Ultralytics .pt to ncnn at a fixed input size; returns its ModelSpec.

    Writes out_dir/<name>.param and <name>.bin (name default "<pt stem>-fp32|fp16"). ModelSpec.path is
    the .param's file name and extra_files holds the .bin's (the caller makes them run-relative).
    Input blob: float32 NCHW RGB 0..1 (letterboxed for detect, squashed for classify). Output blob:
    (4+nc, anchors) cx,cy,w,h in input pixels + class scores ("yolov8"), or (nc,) probabilities;
    ncnn drops the batch axis, the edge backend puts it back.
    fp16 stores the weights as float16 (half the file) and marks the spec precision "fp16", which makes
    the edge backend turn on ncnn's fp16 storage/arithmetic (fast on the Pi 5's ARMv8.2 cores).
    sha256: what the run's train stage recorded for pt_path; checked on the private copy that is loaded.
    """
    from export.offline import RAW_HEAD_NMS, load_model, verbosity

    pt_path, out_dir = Path(pt_path), Path(out_dir)
    (h, w), class_names = check_person_model(pt_path, task, imgsz, sha256)
    precision = "fp16" if fp16 else "fp32"
    name = name or f"{pt_path.stem}-{precision}"
    param_out, bin_out = out_dir / f"{name}.param", out_dir / f"{name}.bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        local_pt = tmp / "model.pt"
        shutil.copy2(pt_path, local_pt)
        model = load_model(task, local_pt, sha256=sha256, shown=pt_path)  # the bytes that are loaded
        with verbosity(progress), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="torch")  # jit deprecation notes
            ts = Path(
                model.export(
                    format="torchscript", imgsz=(h, w), optimize=False, nms=RAW_HEAD_NMS, device="cpu",
                    batch=1,
                )
            )
        param, weights = run_pnnx(ts, (h, w), fp16, tmp)
        in_names, out_names = parse_param_blobs(param)
        if len(in_names) != 1 or len(out_names) != 1:
            raise CctvkitError(
                f"pnnx wrote {len(in_names)} inputs / {len(out_names)} outputs, expected 1 / 1",
                param_out,
                "export a single-input, single-output model (nms=False)",
            )
        spec = ModelSpec(
            task=task,  # type: ignore[arg-type]
            format="ncnn",
            precision=precision,
            path=param_out.name,
            imgsz=(h, w),
            class_names=class_names,
            person_class=class_names.index("person"),
            person_classes=person_class_ids(class_names),
            layout="NCHW",
            input_dtype="float32",
            boxes_normalized=False,
            decoding="yolov8" if task == "detect" else "probs",
            extra_files=[bin_out.name],
            notes={
                "input_name": in_names[0],
                "output_names": out_names,
                "exporter": "pnnx",
                "pnnx_version": _version("pnnx"),
                "ncnn_version": _version("ncnn"),
                "source": pt_path.name,
                "nms": False,
                # Read by the edge backend: fp16 storage + arithmetic on ARMv8.2 (the Pi 5) for an fp16
                # export only; an fp32 export promises fp32 maths (ncnn's own default would be fp16).
                "ncnn_fp16": fp16,
            },
        )
        import torch

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
            reference = torch.jit.load(str(ts), map_location="cpu").eval()
        check = check_ncnn(param, weights, spec, reference, param_out)
        spec.notes.update(check)
        weights.replace(bin_out)  # same folder: atomic renames, .bin first (see module docstring)
        param.replace(param_out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    spec.notes["weights_sha256"] = sha256_file(bin_out)  # the manifest's sha256 covers only the .param
    return ModelSpec.from_json({**spec.to_json(), "sha256": sha256_file(param_out)})


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
