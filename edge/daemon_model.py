"""The model the daemon's config names: its file found and checked (sha256 against the run's manifest or
model.sha256), its ModelSpec read, as many instances loaded as the daemon has inference workers; and
what one frame through one instance comes to (persons, the detection event to record)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml

from edge.atomic import sha256_file
from edge.backends import spec_from_onnx, spec_from_tflite
from edge.config import ModelConfig
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.records import Event
from edge.types import ModelSpec

Model = Detector | Classifier


def _spec_for_file(cfg: ModelConfig, path: Path) -> ModelSpec:
    """ModelSpec of a bare model file: a ModelSpec YAML when given, else what the file says about itself."""
    if cfg.spec is not None:
        try:
            doc = yaml.safe_load(cfg.spec.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise CctvkitError(f"cannot read the model spec ({e})".replace("\n", " "), cfg.spec,
                               "fix model.spec: a YAML ModelSpec or the metadata.yaml of an export") from e
        if not isinstance(doc, dict):
            raise CctvkitError("model spec is not a mapping", cfg.spec, "write ModelSpec fields as YAML keys")
        if "class_names" not in doc and "names" in doc:  # Ultralytics' metadata.yaml of an export
            if path.suffix == ".tflite":
                return spec_from_tflite(path, metadata_yaml=cfg.spec)
            raise CctvkitError("an Ultralytics metadata.yaml only describes .tflite files here", cfg.spec,
                               "drop model.spec (.onnx files carry their metadata) or write a ModelSpec YAML")
        try:
            return ModelSpec.from_json({**doc, "path": str(path)})
        except (TypeError, KeyError, ValueError) as e:
            raise CctvkitError(f"not a valid ModelSpec ({e})", cfg.spec,
                               "give task, format, precision, imgsz, class_names (see edge/types.py)") from e
    if path.suffix == ".onnx":
        return spec_from_onnx(path)
    if path.suffix == ".tflite":
        return spec_from_tflite(path)
    raise CctvkitError(f"a {path.suffix or 'suffix-less'} file does not describe itself", path,
                       "add model.spec: a YAML ModelSpec for it, or use a run's manifest")


def model_file(cfg: ModelConfig) -> tuple[ModelSpec, Path]:
    """The configured model's spec and file, the file checked (sha256 against the manifest or
    model.sha256); CctvkitError for a missing, corrupt or mismatching file."""
    if cfg.manifest is not None and cfg.name is not None:
        manifest = Manifest.load(cfg.manifest)
        path = manifest.model_path(cfg.name)  # missing file or sha256 mismatch -> CctvkitError
        return manifest.models()[cfg.name], path
    assert cfg.file is not None
    path = cfg.file
    if not path.is_file():
        raise CctvkitError("model file not found", path, "check model.file")
    expected = (cfg.sha256 or "").lower()
    if expected and sha256_file(path) != expected:
        raise CctvkitError("sha256 does not match model.sha256 (changed or corrupt)", path,
                           "copy the model again or update model.sha256")
    return _spec_for_file(cfg, path), path


def open_model(cfg: ModelConfig, spec: ModelSpec, path: Path) -> Detector | Classifier:
    """One instance of the model (a runtime session of its own, cfg.threads threads)."""
    if spec.task == "detect":
        return Detector(spec, path, backend=cfg.backend, threads=cfg.threads, conf=cfg.conf, iou=cfg.iou,
                        classes=[spec.person_class])
    if spec.task == "classify":
        return Classifier(spec, path, backend=cfg.backend, threads=cfg.threads, threshold=cfg.threshold)
    raise CctvkitError(f"unknown model task '{spec.task}'", path, "use a detect or classify model")


def load_model(cfg: ModelConfig) -> Detector | Classifier:
    """The configured model, its file checked and loaded; CctvkitError for a missing, corrupt or
    mismatching file."""
    spec, path = model_file(cfg)
    return open_model(cfg, spec, path)


def load_models(cfg: ModelConfig) -> list[Detector | Classifier]:
    """cfg.workers instances of the model: the file is checked once, then each worker gets a session of
    its own (runtime sessions are not shared between threads that run them at the same time)."""
    spec, path = model_file(cfg)
    return [open_model(cfg, spec, path) for _ in range(cfg.workers)]


def infer_frame(model: Model, image: np.ndarray, index: int) -> tuple[int, Event | None]:
    """Persons in one frame and the detection event to record (None when there is nobody). Touches only
    `model`: each inference worker calls it with its own."""
    if isinstance(model, Detector):
        d = model.detect(image)
        count = len(d)
        event = Event("detection", time.time(), index, count, round(model.timing.total_ms, 2),
                      boxes=np.round(d.xyxy.astype(np.float64), 1).tolist(),
                      scores=np.round(d.scores.astype(np.float64), 3).tolist())
    else:
        c = model.classify(image)
        count = int(c.is_person)
        event = Event("detection", time.time(), index, count, round(model.timing.total_ms, 2),
                      person_prob=round(c.person_prob, 4))
    return count, (event if count else None)


__all__ = ["Model", "infer_frame", "load_model", "load_models", "model_file", "open_model"]
