"""The device-side model API: a frame in, Detections or a Classification out.

det = load_from_manifest(Manifest.load("runs/site1"), "person-int8")
dets = det.detect(frame_bgr)        # frame pixels, class ids of the model
det.timing                          # pre_ms / infer_ms / post_ms of that call
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import backend_for
from edge.backends.base import Backend
from edge.detect.decode import decode_probs, decode_yolov8
from edge.detect.preprocess import prepare_classification, prepare_detection
from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.types import Classification, Detections, ModelSpec


@dataclass
class Timing:
    """Milliseconds spent in each step of the last call."""

    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {got}")


def _open(spec: ModelSpec, model_path: str | Path, backend: str | None, threads: int, task: str) -> Backend:
    if spec.task != task:
        raise CctvkitError(
            f"the model is a {spec.task} model, not {task}",
            model_path,
            "use Detector for detect models and Classifier for classify models",
        )
    return backend_for(spec.format, backend)(model_path, spec, threads)


class Detector:
    def __init__(
        self,
        spec: ModelSpec,
        model_path: str | Path,
        backend: str | None = None,
        threads: int = 2,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: list[int] | None = None,
        max_det: int = 300,
    ):
        if spec.decoding != "yolov8":
            raise CctvkitError(
                f"unknown detector decoding '{spec.decoding}'", model_path, "export a YOLOv8/YOLO11 head"
            )
        if not (0.0 <= conf < 1.0 and 0.0 < iou <= 1.0):
            raise CctvkitError(
                f"conf {conf} / iou {iou} out of range", fix="use 0 <= conf < 1 and 0 < iou <= 1"
            )
        self.spec = spec
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes = classes
        self.backend = _open(spec, model_path, backend, threads, "detect")
        self.timing = Timing()

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        _check_frame(frame_bgr)
        t0 = time.perf_counter()
        x, lb = prepare_detection(frame_bgr, self.spec)
        t1 = time.perf_counter()
        outputs = self.backend.run(x)
        t2 = time.perf_counter()
        dets = decode_yolov8(outputs, self.spec, lb, self.conf, self.iou, self.classes, self.max_det)
        t3 = time.perf_counter()
        self.timing = Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return dets


class Classifier:
    def __init__(
        self,
        spec: ModelSpec,
        model_path: str | Path,
        backend: str | None = None,
        threads: int = 2,
        threshold: float = 0.5,
    ):
        if not 0.0 <= threshold <= 1.0:
            raise CctvkitError(f"threshold {threshold} out of range", fix="use 0 <= threshold <= 1")
        if not 0 <= spec.person_class < len(spec.class_names):
            raise CctvkitError(
                f"person_class {spec.person_class} is not one of the {len(spec.class_names)} classes",
                model_path,
                "fix person_class in the ModelSpec",
            )
        self.spec = spec
        self.threshold = threshold
        self.backend = _open(spec, model_path, backend, threads, "classify")
        self.timing = Timing()

    def classify(self, frame_bgr: np.ndarray) -> Classification:
        _check_frame(frame_bgr)
        t0 = time.perf_counter()
        x = prepare_classification(frame_bgr, self.spec)
        t1 = time.perf_counter()
        outputs = self.backend.run(x)
        t2 = time.perf_counter()
        probs = decode_probs(outputs, self.spec)
        p = float(probs[self.spec.person_class])
        t3 = time.perf_counter()
        self.timing = Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return Classification(probs=probs, person_prob=p, is_person=p >= self.threshold)


def load_from_manifest(
    manifest: Manifest, name: str, backend: str | None = None, threads: int = 2, **kw: Any
) -> Detector | Classifier:
    """The model `name` of a run, its file checked against the manifest's sha256. Extra keyword arguments
    go to Detector (conf, iou, classes, max_det) or Classifier (threshold)."""
    path = manifest.model_path(name)  # raises on a missing name or a changed file
    spec = manifest.models()[name]
    if spec.task == "detect":
        return Detector(spec, path, backend=backend, threads=threads, **kw)
    if spec.task == "classify":
        return Classifier(spec, path, backend=backend, threads=threads, **kw)
    raise CctvkitError(f"model '{name}' has unknown task '{spec.task}'", manifest.path, "re-run the export")
