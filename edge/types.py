"""Numpy-only result and model-description types shared by edge/, bench/, trainer/ and export/."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    def from_json(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["imgsz"] = tuple(int(v) for v in d["imgsz"])
        for key in ("input_quant", "output_quant"):
            if d.get(key) is not None:
                d[key] = QuantParams(**d[key])
        return cls(**d)
