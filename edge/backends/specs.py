"""ModelSpec from a bare model file (no run manifest): what the file itself says about its input and output.

Ultralytics writes its metadata (class names, imgsz, task) into its exports: a zip appended to .tflite files,
metadata_props in .onnx files. A metadata.yaml passed by the user wins over what is embedded.
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.types import DType, Layout, ModelSpec, Task, person_class_ids

_DTYPES: tuple[DType, ...] = ("float32", "float16", "uint8", "int8")


def _literal(text: str | bytes) -> Any:
    """Ultralytics writes JSON in newer exports and Python reprs (str(dict)) in older ones."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def _names(value: Any) -> list[str]:
    """Class names from {0: 'person', ...}, {'0': 'person'} or ['person', ...]."""
    if isinstance(value, str):
        value = _literal(value)
    if isinstance(value, dict):
        return [str(v) for _, v in sorted(((int(k), v) for k, v in value.items()), key=lambda kv: kv[0])]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def _person_class(names: list[str]) -> int:
    lower = [n.lower() for n in names]
    return lower.index("person") if "person" in lower else 0


def _tflite_embedded_metadata(path: Path) -> dict[str, Any]:
    try:
        if not zipfile.is_zipfile(path):
            return {}
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if not names:
                return {}
            name = "metadata.json" if "metadata.json" in names else names[0]
            meta = _literal(z.read(name))
            return meta if isinstance(meta, dict) else {}
    except (OSError, zipfile.BadZipFile):
        return {}


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        meta = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CctvkitError(
            f"cannot read metadata ({e})", path, "pass the metadata.yaml that export wrote"
        ) from e
    if not isinstance(meta, dict):
        raise CctvkitError("metadata is not a mapping", path, "pass the metadata.yaml that export wrote")
    return meta


def _task_and_nc(out_shape: list[int], path: Path) -> tuple[Task, int]:
    """Task and class count from the first output: (1, 4+nc, A) / (1, A, 4+nc) detect, (1, nc) classify."""
    if len(out_shape) == 3:
        channels = min(out_shape[1], out_shape[2])  # anchors outnumber channels in every YOLO head
        return "detect", channels - 4
    if len(out_shape) == 2:
        return "classify", out_shape[1]
    raise CctvkitError(
        f"output shape {out_shape} is neither a YOLO detection head nor class probabilities",
        path,
        "export a YOLOv8/YOLO11 detect or classify model without NMS (end2end=False)",
    )


def _check_file(path: Path, suffix: str) -> None:
    if not path.is_file():
        raise CctvkitError("model file not found", path, "check the path")
    if path.suffix.lower() != suffix:
        raise CctvkitError(f"expected a {suffix} file", path, f"pass the {suffix} model")


def spec_from_tflite(
    path: str | Path, metadata_yaml: str | Path | None = None, boxes_normalized: bool | None = None
) -> ModelSpec:
    """Spec of a .tflite file read from the interpreter (input dtype/layout/quantisation, output quantisation)
    and Ultralytics metadata (names). boxes_normalized defaults to True for detectors: Ultralytics' TFLite
    exports divide boxes by the input size so int8 outputs keep score resolution."""
    from edge.backends.litert import load_interpreter, quant_of

    path = Path(path)
    _check_file(path, ".tflite")
    try:
        interp = load_interpreter(str(path), 1)
    except ImportError as e:
        raise CctvkitError("no TFLite runtime installed", path, "pip install ai-edge-litert") from e
    except Exception as e:  # a truncated or non-TFLite file
        raise CctvkitError(f"not a readable TFLite model ({e})", path, "re-export the model") from e
    ins, outs = interp.get_input_details(), interp.get_output_details()
    shape = [int(d) for d in ins[0]["shape"]]
    if len(ins) != 1 or len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise CctvkitError(f"input {shape} is not one RGB image batch", path, "export an image model")
    layout: Layout = "NHWC" if shape[3] == 3 else "NCHW"
    imgsz = (shape[1], shape[2]) if layout == "NHWC" else (shape[2], shape[3])
    dtype = np.dtype(ins[0]["dtype"]).name
    if dtype not in _DTYPES:
        raise CctvkitError(f"input dtype {dtype} is not supported", path, f"export with one of {_DTYPES}")
    task, nc = _task_and_nc([int(d) for d in outs[0]["shape"]], path)

    meta = _read_yaml(metadata_yaml) if metadata_yaml is not None else _tflite_embedded_metadata(path)
    names = _names(meta.get("names")) or [f"class{i}" for i in range(nc)]
    if len(names) != nc:
        raise CctvkitError(
            f"metadata names {len(names)} classes but the model outputs {nc}",
            metadata_yaml or path,
            "pass the metadata.yaml of this export",
        )
    kinds = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    precision = "int8" if "int8" in kinds else "fp16" if "float16" in kinds else "fp32"
    return ModelSpec(
        task=task,
        format="tflite",
        precision=precision,
        path=str(path),
        imgsz=imgsz,
        class_names=names,
        person_class=_person_class(names),
        person_classes=person_class_ids(names),
        layout=layout,
        input_dtype=dtype,  # type: ignore[arg-type]  # checked against _DTYPES above
        input_quant=quant_of(ins[0]),
        output_quant=quant_of(outs[0]),
        boxes_normalized=(task == "detect") if boxes_normalized is None else boxes_normalized,
        decoding="yolov8" if task == "detect" else "probs",
        sha256=sha256_file(path),
        notes={"source": "spec_from_tflite", "description": str(meta.get("description", ""))},
    )


def spec_from_onnx(path: str | Path) -> ModelSpec:
    """Spec of an Ultralytics .onnx export from its metadata_props (names, imgsz, task) and its input."""
    from edge.backends.onnxruntime import ort_session

    path = Path(path)
    _check_file(path, ".onnx")
    try:
        session = ort_session(str(path), 1)
    except ImportError as e:
        raise CctvkitError("onnxruntime is not installed", path, "pip install onnxruntime") from e
    except Exception as e:
        raise CctvkitError(f"not a readable ONNX model ({e})".replace("\n", " "), path, "re-export") from e
    meta = {k: _literal(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    if meta.get("end2end") is True:
        raise CctvkitError(
            "the model has NMS built in (end2end); cctvkit decodes the raw YOLO head",
            path,
            "re-export with end2end=False",
        )
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise CctvkitError(f"input {shape} is not one RGB image batch", path, "export an image model")
    layout: Layout = "NCHW" if shape[1] == 3 else "NHWC"
    hw = shape[2:4] if layout == "NCHW" else shape[1:3]
    if all(isinstance(d, int) and d > 0 for d in hw):
        imgsz = (int(hw[0]), int(hw[1]))
    elif "imgsz" in meta:
        v = meta["imgsz"]
        imgsz = (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))
    else:
        raise CctvkitError("dynamic input size and no imgsz metadata", path, "export with a fixed imgsz")
    dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}.get(inp.type)
    if dtype is None:
        raise CctvkitError(f"input type {inp.type} is not supported", path, "export with float32 input")
    # A dynamic anchor axis is a name, not a number: count it as huge so the channel axis is the smaller.
    out_shape = [d if isinstance(d, int) and d > 0 else 1 << 30 for d in session.get_outputs()[0].shape]
    out_shape[0] = 1
    task, nc = _task_and_nc(out_shape, path)
    names = _names(meta.get("names")) or [f"class{i}" for i in range(nc)]
    if len(names) != nc:
        raise CctvkitError(
            f"metadata names {len(names)} classes but the model outputs {nc}", path, "re-export the model"
        )
    args = meta.get("args")
    args = args if isinstance(args, dict) else {}
    precision = "int8" if args.get("int8") else "fp16" if args.get("half") or dtype == "float16" else "fp32"
    return ModelSpec(
        task=task,
        format="onnx",
        precision=precision,
        path=str(path),
        imgsz=imgsz,
        class_names=names,
        person_class=_person_class(names),
        person_classes=person_class_ids(names),
        layout=layout,
        input_dtype=dtype,  # type: ignore[arg-type]  # one of the mapped literals
        decoding="yolov8" if task == "detect" else "probs",
        sha256=sha256_file(path),
        notes={"source": "spec_from_onnx", "description": str(meta.get("description", ""))},
    )
