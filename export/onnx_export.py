"""Ultralytics .pt -> ONNX FP32 (static shape, no NMS, onnxslim-simplified), with its ModelSpec.

Ultralytics writes the .onnx beside the .pt, so the export runs on a copy of the .pt in a temp folder
next to out_path; the checked file is then renamed onto out_path, so out_path is complete or absent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.types import ModelSpec, person_class_ids

OPSET = 17  # ONNX Runtime >= 1.14 (the Pi's pip wheels) runs it; quantisation tooling supports it fully
TASKS = ("detect", "classify")
STRIDES = (8, 16, 32)  # YOLO11 detect head levels (P3-P5)


def check_person_model(pt_path: Path, task: str, imgsz: int | tuple[int, int],
                       sha256: str | None = None) -> tuple[tuple[int, int], list[str]]:
    """Before any exporter writes a byte: the task is known, the .pt loads (weights-only, and with the
    train stage's `sha256` when given) and has a 'person' class. Returns ((h, w), class names); errors
    name the user's file."""
    from export.offline import load_model

    if task not in TASKS:
        raise CctvkitError(f"unknown task '{task}'", fix=f"choose one of: {', '.join(TASKS)}")
    hw = _imgsz(imgsz, task)
    if not Path(pt_path).is_file():
        raise CctvkitError("model file not found", pt_path, "train first (`trainer train`)")
    names_map = load_model(task, Path(pt_path), sha256=sha256).names
    class_names = [str(names_map[k]) for k in sorted(names_map)]
    if "person" not in class_names:
        raise CctvkitError(
            f"the model has no 'person' class (classes: {class_names})", pt_path, "train on person labels"
        )
    return hw, class_names


def _imgsz(imgsz: int | tuple[int, int], task: str) -> tuple[int, int]:
    h, w = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    if task == "detect" and (h % 32 or w % 32):
        raise CctvkitError(f"detector imgsz {h}x{w} is not a multiple of 32", fix="use e.g. 320 or 416")
    if h < 32 or w < 32:
        raise CctvkitError(f"imgsz {h}x{w} is too small", fix="use at least 32")
    return h, w


def expected_output_shape(task: str, imgsz: tuple[int, int], nc: int) -> tuple[int, ...]:
    """(1, 4 + nc, anchors) for the yolov8-style detect head; (1, nc) probabilities for classify."""
    if task == "classify":
        return (1, nc)
    h, w = imgsz
    anchors = sum((h // s) * (w // s) for s in STRIDES)
    return (1, 4 + nc, anchors)


def check_onnx_io(path: Path, spec: ModelSpec, shown: Path | None = None) -> tuple[int, ...]:
    """Load the file in ONNX Runtime, run a grey frame and check the input/output shapes and float32 types
    against the spec; returns the output shape. `shown`: the path named in errors (default `path`)."""
    shown = shown or path
    import numpy as np
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for invalid graphs
        raise CctvkitError(f"ONNX Runtime cannot load the model ({e})", shown, "re-export it") from e
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    h, w = spec.imgsz
    want_in = [1, 3, h, w] if spec.layout == "NCHW" else [1, h, w, 3]
    if len(inputs) != 1 or list(inputs[0].shape) != want_in or inputs[0].type != "tensor(float)":
        raise CctvkitError(
            f"model input is {[(i.shape, i.type) for i in inputs]}, expected one float32 {want_in}",
            shown,
            "re-export with a static imgsz (dynamic=False)",
        )
    x = np.full(want_in, 114 / 255, np.float32)
    y = sess.run(None, {inputs[0].name: x})
    want_out = expected_output_shape(spec.task, spec.imgsz, len(spec.class_names))
    if len(outputs) != 1 or outputs[0].type != "tensor(float)" or tuple(y[0].shape) != want_out:
        raise CctvkitError(
            f"model output is {[(o.shape, o.type) for o in outputs]} (ran: {y[0].shape}), expected float32 "
            f"{want_out}",
            shown,
            "export without NMS (nms=False) from a YOLO11/YOLOv8-style model",
        )
    return tuple(y[0].shape)


def export_onnx(
    pt_path: Path,
    out_path: Path,
    *,
    task: str,
    imgsz: int | tuple[int, int],
    opset: int = OPSET,
    progress: bool = False,
    sha256: str | None = None,
) -> ModelSpec:
    """Export an Ultralytics .pt to ONNX FP32 at a fixed input size; returns its ModelSpec.

    ModelSpec.path is out_path's file name (the caller makes it run-relative). Input: float32 NCHW RGB
    0..1 (letterboxed for detect, squashed for classify). Output: raw head (1, 4+nc, anchors) cx,cy,w,h in
    input pixels + per-class scores, or (1, nc) softmax probabilities.
    sha256: what the run's train stage recorded for pt_path; checked on the private copy that is loaded.
    """
    from export.offline import RAW_HEAD_NMS, load_model, verbosity

    pt_path, out_path = Path(pt_path), Path(out_path)
    (h, w), class_names = check_person_model(pt_path, task, imgsz, sha256)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        local_pt = tmp / "model.pt"
        shutil.copy2(pt_path, local_pt)
        model = load_model(task, local_pt, sha256=sha256, shown=pt_path)  # the bytes that are loaded
        with verbosity(progress):
            produced = Path(
                model.export(
                    format="onnx",
                    imgsz=(h, w),
                    simplify=True,
                    dynamic=False,
                    nms=RAW_HEAD_NMS,
                    opset=opset,
                    device="cpu",
                    batch=1,
                )
            )
        spec = ModelSpec(
            task=task,  # type: ignore[arg-type]
            format="onnx",
            precision="fp32",
            path=out_path.name,
            imgsz=(h, w),
            class_names=class_names,
            person_class=class_names.index("person"),
            person_classes=person_class_ids(class_names),
            layout="NCHW",
            input_dtype="float32",
            boxes_normalized=False,
            decoding="yolov8" if task == "detect" else "probs",
            notes={
                "opset": opset,
                "simplify": "onnxslim",
                "nms": False,
                "source": pt_path.name,
                "exporter": "ultralytics",
            },
        )
        check_onnx_io(produced, spec, shown=out_path)
        produced.replace(out_path)  # same folder as out_path: an atomic rename
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelSpec.from_json({**spec.to_json(), "sha256": sha256_file(out_path)})
