"""Teacher mode: a detector the user already has (a COCO YOLO, Frigate's model) labels the real frames.

The teacher is read by the edge runtime (the same Detector that runs on the Pi), so any model file it
reads works and its class names come from the file's own metadata (or --teacher-metadata for a bare
.tflite). Checked before anything is written: a classifier, a detector without a 'person' class, or a file
the runtime cannot read is a one-line error naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edge.errors import CctvkitError
from edge.eval.accuracy import person_only
from edge.strict import Strict
from edge.types import Detections, ModelSpec
from trainer.relabel.tighten import TightenParams
from trainer.relabel.tracks import TrackParams

SUFFIXES = (".onnx", ".tflite")


def teacher_spec(path: str | Path, metadata: str | Path | None = None) -> ModelSpec:
    """The teacher's ModelSpec, or a CctvkitError that says why it cannot teach."""
    from edge.backends import spec_from_onnx, spec_from_tflite

    path = Path(path)
    if not path.is_file():
        raise CctvkitError("teacher model not found", path, "pass an existing .onnx or .tflite detector with --teacher")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CctvkitError(f"the edge runtime reads a teacher as {' or '.join(SUFFIXES)}, not '{suffix}'", path,
                           "pass the model's .onnx or .tflite export (an ncnn .param carries no class names)")
    if metadata is not None and suffix != ".tflite":
        raise CctvkitError("--teacher-metadata only describes .tflite files", metadata,
                           "drop --teacher-metadata: an .onnx export carries its class names")
    spec = spec_from_onnx(path) if suffix == ".onnx" else spec_from_tflite(path, metadata)
    if spec.task != "detect":
        raise CctvkitError("the teacher is a classifier, not a detector", path,
                           "pass a detection model (boxes out), e.g. a COCO YOLO export")
    names = [n.lower() for n in spec.class_names]
    if "person" not in names:
        shown = ", ".join(spec.class_names[:5]) + (", ..." if len(names) > 5 else "")
        hint = ("pass --teacher-metadata with its class names (Ultralytics metadata.yaml)"
                if suffix == ".tflite" else "pass a detector that has a 'person' class")
        raise CctvkitError(f"the teacher's {len(names)} classes ({shown}) have no 'person'", metadata or path, hint)
    if spec.class_names[spec.person_class].lower() != "person":  # spec_from_* found it by name; make sure
        raise CctvkitError("the teacher's person class is ambiguous", path, "pass --teacher-metadata")
    return spec


@dataclass(frozen=True)
class TeacherFile:
    """--teacher MODEL [--teacher-metadata YAML], as given; check() before anything is written."""

    path: Path
    metadata: Path | None = None

    def __post_init__(self) -> None:  # absolute: the manifest and scene.json name the same file from anywhere
        object.__setattr__(self, "path", Path(self.path).resolve())
        if self.metadata is not None:
            object.__setattr__(self, "metadata", Path(self.metadata).resolve())

    def check(self) -> ModelSpec:
        return teacher_spec(self.path, self.metadata)

    def inputs(self) -> dict[str, Path]:
        """What the manifest hashes for the scene stage."""
        return {"teacher": self.path, **({"teacher_metadata": self.metadata} if self.metadata else {})}


@dataclass
class Teacher:
    """One teacher, loaded: person boxes of a frame down to `low_conf` (the tracker decides what stays)."""

    path: Path
    spec: ModelSpec
    detector: Any  # edge.detector.Detector

    @classmethod
    def load(cls, path: str | Path, metadata: str | Path | None = None, low_conf: float = 0.1,
             threads: int = 2) -> Teacher:
        from edge.detector import Detector

        spec = teacher_spec(path, metadata)
        det = Detector(spec, path, threads=threads, conf=low_conf, iou=0.45, classes=[spec.person_class])
        return cls(Path(path), spec, det)

    def find(self, frame: np.ndarray) -> Detections:
        return person_only(self.detector.detect(frame), self.spec.person_class)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.spec.format, "imgsz": list(self.spec.imgsz),
                "classes": len(self.spec.class_names), "person_class": self.spec.person_class,
                "precision": self.spec.precision, "sha256": self.spec.sha256}


class TeacherParams(Strict):
    """How the teacher's boxes become labels (the model file itself is --teacher, an input, not a knob)."""

    conf: float = Field(0.25, gt=0.0, lt=1.0, description="a teacher box at or above this is a label "
                        "(when its frames cannot be tracked; otherwise track.high_conf starts a track)")
    fuse: Literal["auto", "teacher", "union"] = Field(
        "auto", description="teacher: its boxes only; union: plus the scene finder's boxes that no teacher box "
        "covers; auto: union when the teacher finds under auto_ratio as many people as the finder")
    auto_ratio: float = Field(0.5, gt=0, le=1, description="fuse auto: below this teacher/finder box ratio the "
                              "teacher does not know the viewpoint (thermal harbour 0.72: teacher; CAVIAR's "
                              "ceiling fisheye ~0.05: union)")
    track: bool = Field(True, description="link the teacher's boxes over the scan frames (trainer/relabel/"
                        "tracks.py) when the footage is dense enough in time for it")
    tracking: TrackParams = Field(default_factory=lambda: TrackParams.model_validate({}))
    threads: int = Field(2, ge=1, le=64)
    tighten: TightenParams = Field(default_factory=lambda: TightenParams.model_validate({}))
