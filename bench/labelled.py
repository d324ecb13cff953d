"""The labelled frames every cell is scored on: the same frames for detectors and classifiers.

Two sources:
- the run's scene holdout (default): held-out video frames with PSEUDO-labels, plus the same frames with
  their labelled persons painted over by the background plate as no-person frames;
- a YOLO folder (--labels DIR: images/ + labels/, class `label_class` = person) with optional
  --negatives DIR of real no-person frames (e.g. thermal-harbour/backgrounds).
Ground truth is person-only (class 0 here); detections are mapped from the model's person class to 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from bench.evaluate import erase_people, load_holdout
from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, list_images, orphan_labels, parse_yolo_labels
from edge.manifest import Manifest

GroundTruth = tuple[np.ndarray, np.ndarray]  # (class_ids (G,), xyxy (G, 4))
T = TypeVar("T")
# Normalised coordinates a little outside 0..1 are rounding of boxes at the border; far outside = pixels.
_COORD_SLACK = 0.02


@dataclass
class LabelledSet:
    frames: list[np.ndarray]
    gts: list[GroundTruth]
    names: list[str]
    description: str
    negatives_description: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def has_person(self) -> np.ndarray:
        return np.array([len(c) > 0 for c, _ in self.gts], bool)

    def summary(self) -> dict[str, object]:
        hp = self.has_person
        return {
            "frames": len(self.frames),
            "frames_with_person": int(hp.sum()),
            "frames_without_person": int((~hp).sum()),
            "boxes": int(sum(len(c) for c, _ in self.gts)),
            "labels": self.description,
            "negatives": self.negatives_description,
        }


def spread(items: list[T], n: int) -> list[T]:
    """Up to n items spread evenly over the list (consecutive video frames are near-duplicates, so an even
    spread covers the whole time span); all of them when n <= 0."""
    if n <= 0 or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        raise CctvkitError("cannot decode image", path, "replace or delete the file")
    return img


def holdout_set(manifest: Manifest, max_frames: int) -> LabelledSet:
    """The scene stage's held-out frames + the same frames with people painted over (no-person frames)."""
    frames, gts = load_holdout(manifest, max_frames)
    plate = cv2.imread(str(manifest.output("scene", "plate.png")))
    if plate is None:
        raise CctvkitError("cannot decode the background plate", manifest.output("scene", "plate.png"),
                           "re-run `trainer scene`")
    erased = [erase_people(f, xyxy, plate) for f, (_, xyxy) in zip(frames, gts, strict=True)]
    empty = (np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    person_only = [(np.zeros(int((c == 0).sum()), np.int64), b[c == 0]) for c, b in gts]
    return LabelledSet(
        frames=frames + erased,
        gts=person_only + [empty] * len(erased),
        names=[f"holdout-{i}" for i in range(len(frames))] + [f"holdout-{i}-erased" for i in range(len(erased))],
        description="pseudo-labels (background difference + HOG) of the run's held-out video frames",
        negatives_description="the same frames with labelled persons painted over by the background plate",
    )


def _images_root(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def _labels_root(folder: Path) -> Path:
    return folder / "labels" if (folder / "labels").is_dir() else folder


def _check_orphans(folder: Path, images: list[Path]) -> None:
    for txt in orphan_labels(_labels_root(folder), images)[:1]:
        raise CctvkitError(
            "label file has no matching image (labels do not match the frames)", txt,
            f"put its image under {_images_root(folder)} with the same name, or delete the label",
        )


def _load_labels(path: Path, w: int, h: int, label_class: int, seen: set[int]) -> GroundTruth:
    if not path.exists():
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    cls, norm = parse_yolo_labels(path.read_text(), 1, 1, str(path))
    if len(norm) and (norm.min() < -_COORD_SLACK or norm.max() > 1 + _COORD_SLACK):
        raise CctvkitError(
            "box coordinates outside 0..1 (labels do not match the frames: pixels instead of normalised?)",
            path, "write YOLO labels as `class cx cy w h` normalised by the image width and height",
        )
    seen.update(int(c) for c in cls)
    keep = cls == label_class
    xyxy = norm[keep] * np.array([w, h, w, h], np.float32)
    return np.zeros(int(keep.sum()), np.int64), xyxy.astype(np.float32)


def folder_set(labels_dir: str | Path, negatives_dir: str | Path | None = None, max_frames: int = 120,
               label_class: int = 0) -> LabelledSet:
    """A YOLO images/labels folder (missing label file = no person) plus optional no-person frames."""
    folder = Path(labels_dir)
    if not folder.is_dir():
        raise CctvkitError("labels folder not found", folder, "pass a YOLO folder with images/ and labels/")
    all_images = list_images(_images_root(folder))
    if not all_images:
        raise CctvkitError("no images in the labels folder", folder, "pass a YOLO folder with images/ and labels/")
    _check_orphans(folder, all_images)
    if not any(label_path_for(p).exists() for p in all_images):
        raise CctvkitError(
            f"none of the {len(all_images)} images has a label file (labels do not match the frames)",
            _labels_root(folder), "put labels/<name>.txt beside images/<name>.jpg",
        )
    frames, gts, names = [], [], []
    seen: set[int] = set()
    for p in spread(all_images, max_frames):
        img = _read(p)
        frames.append(img)
        gts.append(_load_labels(label_path_for(p), img.shape[1], img.shape[0], label_class, seen))
        names.append(str(p))
    if seen and label_class not in seen:
        raise CctvkitError(
            f"the labels hold classes {sorted(seen)} but no class {label_class} (person)", _labels_root(folder),
            "pass --label-class with the id your labels use for person",
        )
    neg_text = ""
    if negatives_dir is not None:
        neg = Path(negatives_dir)
        neg_images = list_images(neg) if neg.is_dir() else []
        if not neg_images:
            raise CctvkitError("no images in the negatives folder", neg, "pass a folder of no-person frames")
        for p in spread(neg_images, max_frames):
            frames.append(_read(p))
            gts.append((np.zeros(0, np.int64), np.zeros((0, 4), np.float32)))
            names.append(str(p))
        neg_text = f"no-person frames from {neg}"
    return LabelledSet(frames, gts, names, description=f"YOLO labels (class {label_class} = person) in {folder}",
                       negatives_description=neg_text)
