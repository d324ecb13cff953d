"""The model the daemon's config names: its file found and checked (sha256 against the run's manifest or
model.sha256), its ModelSpec read, as many instances loaded as the daemon has inference workers; and
what one frame through one instance comes to (persons, the detection event to record)."""

from __future__ import annotations

import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ModelRef:
    """The model file a config names, checked: what /healthz reports and `edge check-config` prints.
    sha256 is the value the file was verified against (the manifest's, or model.sha256), so a reader never
    hashes the file again; only a bare file with no model.sha256 is hashed, once, here."""

    name: str  # model.name, or the bare file's name
    path: Path
    sha256: str
    manifest: Path | None  # the manifest.json the model was found in; None for a bare file
    spec: ModelSpec | None  # the manifest's ModelSpec; None for a bare file (reading it needs the runtime)


def verified_model(cfg: ModelConfig) -> ModelRef:
    """The configured model's file, found and checked (sha256 against the manifest, extra files too, or
    model.sha256) without loading any runtime; CctvkitError for a missing, corrupt or mismatching file."""
    if cfg.manifest is not None and cfg.name is not None:
        manifest = Manifest.load(cfg.manifest)
        path = manifest.model_path(cfg.name)  # missing file or sha256 mismatch -> CctvkitError
        spec = manifest.models()[cfg.name]
        return ModelRef(cfg.name, path, spec.sha256, manifest.path, spec)
    assert cfg.file is not None
    path = cfg.file
    if not path.is_file():
        raise CctvkitError("model file not found", path, "check model.file")
    expected = (cfg.sha256 or "").lower()
    actual = sha256_file(path)
    if expected and actual != expected:
        raise CctvkitError("sha256 does not match model.sha256 (changed or corrupt)", path,
                           "copy the model again or update model.sha256")
    return ModelRef(path.name, path, actual, None, None)


def model_file(cfg: ModelConfig, ref: ModelRef | None = None) -> tuple[ModelSpec, Path]:
    """The configured model's spec and file, the file checked (verified_model, unless `ref` is its result
    already); CctvkitError for a missing, corrupt or mismatching file."""
    ref = verified_model(cfg) if ref is None else ref
    return (ref.spec if ref.spec is not None else _spec_for_file(cfg, ref.path)), ref.path


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


def load_models(cfg: ModelConfig, ref: ModelRef | None = None) -> list[Detector | Classifier]:
    """cfg.workers instances of the model: the file is checked once (or was: `ref`), then each worker gets
    a session of its own (runtime sessions are not shared between threads that run them at the same time)."""
    spec, path = model_file(cfg, ref)
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


__all__ = ["Model", "ModelRef", "infer_frame", "load_model", "load_models", "model_file", "open_model",
           "verified_model"]
