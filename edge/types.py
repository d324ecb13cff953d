"""Numpy-only result and model-description types shared by edge/, bench/, trainer/ and export/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Literal, get_args

import numpy as np

Task = Literal["detect", "classify"]
Layout = Literal["NCHW", "NHWC"]
DType = Literal["float32", "float16", "uint8", "int8"]


@dataclass(frozen=True)
class Detections:
    """N boxes in pixel xyxy of the original frame, with scores and class ids."""

    xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not (len(xyxy) == len(scores) == len(class_ids)):
            raise ValueError(
                f"Detections: xyxy has {len(xyxy)} rows, scores {len(scores)}, class_ids {len(class_ids)}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def filter(self, keep: np.ndarray) -> Detections:
        return Detections(self.xyxy[keep], self.scores[keep], self.class_ids[keep])


@dataclass(frozen=True)
class Classification:
    """Per-class probabilities of one frame and the person verdict at the model's threshold."""

    probs: np.ndarray  # (C,) float32, sums to 1
    person_prob: float
    is_person: bool


@dataclass(frozen=True)
class QuantParams:
    """Affine quantisation: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


# Class names that are a person to the device. "person_synthetic" is the generated persons' class of a detector
# trained on compose.label_classes: split labels (for analysis); deployed and scored, it is a person too.
PERSON_CLASS_NAMES = ("person", "person_synthetic")


def person_class_ids(names: list[str]) -> list[int]:
    """The ids of every person class of a model with these class names, when it has more than one (a
    two-class person detector); [] otherwise, the spec's single person_class then being the person."""
    ids = [i for i, n in enumerate(names) if n.lower() in PERSON_CLASS_NAMES]
    return ids if len(ids) > 1 else []


@dataclass(frozen=True)
class ModelSpec:
    """Everything the device needs to run a model file; written into the run manifest by export.

    Pixels go in as RGB; float inputs are scaled to 0..1; detectors are letterboxed (pad 114).
    Detector output convention "yolov8": one tensor (1, 4 + nc, anchors) of cx, cy, w, h and
    per-class scores (no objectness), in input pixels unless boxes_normalized.
    Classifier output convention "probs": (1, nc) probabilities (softmax already applied).
    """

    task: Task
    format: str  # "onnx", "ncnn", "tflite"
    precision: str  # "fp32", "fp16", "int8"
    path: str  # model file, relative to the manifest's run directory
    imgsz: tuple[int, int]  # (height, width)
    class_names: list[str]
    person_class: int = 0
    layout: Layout = "NCHW"
    input_dtype: DType = "float32"
    input_quant: QuantParams | None = None
    output_quant: QuantParams | None = None
    boxes_normalized: bool = False
    decoding: str = "yolov8"
    sha256: str = ""
    extra_files: list[str] = field(default_factory=list)  # e.g. the ncnn .bin beside its .param
    notes: dict[str, Any] = field(default_factory=dict)
    # Every class that is a person (person_class among them) when there are several: decoding merges them
    # into person_class, so everything downstream sees one person class. Empty: person_class alone.
    person_classes: list[int] = field(default_factory=list)

    @property
    def person_ids(self) -> list[int]:
        return sorted(self.person_classes) if self.person_classes else [self.person_class]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["imgsz"] = list(self.imgsz)
        if not self.person_classes:  # single-person-class specs are written as they always were
            del d["person_classes"]
        return d

    @classmethod
    def from_json(cls, d: Any) -> ModelSpec:
        """Strict: a missing, unknown or ill-typed key raises SpecError naming it. A spec comes from a manifest or
        a YAML a person may have edited; failing here names the key instead of a KeyError in a backend."""
        if not isinstance(d, dict):
            raise SpecError("", f"a model spec must be an object of ModelSpec keys, not {kind_of(d)}")
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise SpecError(str(key), f"is not a ModelSpec key (known: {', '.join(known)})")
        for key in _REQUIRED:
            if key not in d:
                raise SpecError(key, "is missing")
        for key, value in d.items():
            ok, wanted = _CHECKS[key]
            if not ok(value):
                raise SpecError(key, f"must be {wanted}, not {kind_of(value)} {value!r:.40}")
        names = d["class_names"]
        for key in ("person_class", "person_classes"):
            ids = d.get(key, [])
            if any(i >= len(names) for i in (ids if isinstance(ids, list) else [ids])):
                raise SpecError(key, f"names a class beyond the {len(names)} of class_names")
        out = dict(d)
        out["imgsz"] = tuple(int(v) for v in d["imgsz"])
        out["person_class"] = int(d.get("person_class", 0))
        out["person_classes"] = [int(v) for v in d.get("person_classes", [])]
        for key in ("input_quant", "output_quant"):
            if d.get(key) is not None:
                out[key] = QuantParams(float(d[key]["scale"]), int(d[key]["zero_point"]))
        return cls(**out)


class SpecError(ValueError):
    """A ModelSpec document with a missing, unknown or ill-typed key; `key` names it (empty: the whole spec)."""

    def __init__(self, key: str, problem: str):
        self.key = key
        super().__init__(f"key '{key}' {problem}" if key else problem)


def kind_of(value: Any) -> str:
    """A JSON value's type in words, for error messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def _int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _list_of(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(ok(x) for x in v)


def _quant(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and set(v) == {"scale", "zero_point"} and _int(v["zero_point"])
                         and isinstance(v["scale"], Real) and not isinstance(v["scale"], bool))


def _text(v: Any) -> bool:
    return isinstance(v, str)


_REQUIRED = ("task", "format", "precision", "path", "imgsz", "class_names")
# key -> (check, what it must be: the error's wording)
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "task": (lambda v: v in get_args(Task), f"one of {', '.join(get_args(Task))}"),
    "format": (_text, "a string"),
    "precision": (_text, "a string"),
    "path": (lambda v: isinstance(v, str) and v != "", "a file path"),
    "imgsz": (lambda v: isinstance(v, list | tuple) and len(v) == 2 and all(_int(x) and x > 0 for x in v),
              "[height, width] in pixels"),
    "class_names": (lambda v: _list_of(_text)(v) and len(v) > 0, "a non-empty list of class names"),
    "person_class": (lambda v: _int(v) and v >= 0, "a class index"),
    "layout": (lambda v: v in get_args(Layout), f"one of {', '.join(get_args(Layout))}"),
    "input_dtype": (lambda v: v in get_args(DType), f"one of {', '.join(get_args(DType))}"),
    "input_quant": (_quant, "null or {scale, zero_point}"),
    "output_quant": (_quant, "null or {scale, zero_point}"),
    "boxes_normalized": (lambda v: isinstance(v, bool), "true or false"),
    "decoding": (_text, "a string"),
    "sha256": (_text, "a string"),
    "extra_files": (_list_of(_text), "a list of file names"),
    "notes": (lambda v: isinstance(v, dict), "an object"),
    "person_classes": (_list_of(lambda x: _int(x) and x >= 0), "a list of class indices"),
}
# A ModelSpec field without a check would fail from_json with a KeyError: keep the two in step.
assert set(_CHECKS) == {f.name for f in fields(ModelSpec)}, "edge/types.py: _CHECKS must cover every ModelSpec field"
