"""Labelled frames to score on, loaded by one set of rules wherever cctvkit scores a model.

A labelled folder is YOLO: root/images/** with root/labels/** (same relative paths, .txt), or images with
their .txt beside them. An image without a label file shows no person (the YOLO convention); a label
without its image, an image that does not decode, a malformed line or a box outside the image is a
one-line error naming the file. The person class comes from an explicit id, else from root/data.yaml's
names, else 0. Ground truth is person-only, as class 0. Frames are taken in natural name order
(frame_2 before frame_10) and spread evenly when fewer are asked for: consecutive frames of a fixed
camera are near-duplicates, so an even spread covers the whole time span.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.eval.coco import GroundTruth
from edge.formats.yolo import label_path_for, list_images, load_data_yaml, orphan_labels, parse_yolo_labels
from edge.sampling import spread

# Normalised coordinates this far outside 0..1 are rounding of boxes at the border; beyond it, pixels.
COORD_SLACK = 0.01
FOLDER_FIX = "pass a YOLO folder with images/ and labels/ (e.g. ../shared/data/thermal-harbour)"


@dataclass
class LabelledSet:
    """Decoded BGR frames with person boxes (class 0), plus person-free frames (`negatives`).

    Detectors' box scores use `frames` only; presence (both tasks) uses frames + negatives."""

    frames: list[np.ndarray]
    gts: list[GroundTruth]
    names: list[str]
    negatives: list[np.ndarray] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # where they came from, for every report

    @property
    def has_person(self) -> np.ndarray:
        return np.array([len(c) > 0 for c, _ in self.gts], bool)

    @property
    def presence_frames(self) -> list[np.ndarray]:
        return self.frames + self.negatives

    @property
    def presence_truth(self) -> np.ndarray:
        return np.concatenate([self.has_person, np.zeros(len(self.negatives), bool)])

    def summary(self) -> dict[str, Any]:
        hp = self.has_person
        return {**self.info, "frames": len(self.frames), "frames_with_person": int(hp.sum()),
                "frames_without_person": int((~hp).sum()) + len(self.negatives),
                "negative_frames": len(self.negatives), "boxes": int(sum(len(c) for c, _ in self.gts))}


def natural_key(path: Path | str) -> list[Any]:
    """frame_2.jpg before frame_10.jpg: video exports do not always zero-pad their numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(path).as_posix())]


def read_image(path: Path, fix: str = "replace or delete the image and its label file") -> np.ndarray:
    # np.fromfile + imdecode: cv2.imread fails silently on some non-ASCII paths.
    try:
        img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    except (OSError, cv2.error):
        img = None
    if img is None:
        raise CctvkitError("image does not decode", path, fix)
    return img


def images_root(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def labels_root(folder: Path) -> Path:
    return folder / "labels" if (folder / "labels").is_dir() else folder


def person_class_of(root: Path, explicit: int | None = None) -> int:
    """The labels' person class id: explicit, else from root/data.yaml's names, else 0."""
    if explicit is not None:
        return int(explicit)
    yaml = root / "data.yaml"
    if not yaml.is_file():
        return 0
    names = load_data_yaml(yaml)["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    if "person" not in names:
        raise CctvkitError(f"data.yaml has no 'person' class (names: {names})", yaml,
                           "label persons, pass the person class id, or drop data.yaml if class 0 is person")
    return names.index("person")


def list_labelled(root: str | Path) -> list[Path]:
    """The folder's images in natural order, checked: no orphan label, at least one label file."""
    root = Path(root)
    if not root.is_dir():
        raise CctvkitError("labelled folder not found", root, FOLDER_FIX)
    images = sorted(list_images(images_root(root)), key=lambda p: natural_key(p.relative_to(root)))
    if not images:
        raise CctvkitError("no images (.jpg/.jpeg/.png/.bmp) in the labelled folder", root, FOLDER_FIX)
    for txt in orphan_labels(labels_root(root), images)[:1]:
        raise CctvkitError("label file has no matching image (labels do not match the frames)", txt,
                           f"put its image under {images_root(root)} with the same name, or delete the label")
    if not any(label_path_for(p).is_file() for p in images):
        raise CctvkitError(f"none of the {len(images)} images has a label file", labels_root(root),
                           "put labels/<name>.txt beside images/<name>.jpg")
    return images


def load_label_file(path: Path, w: int, h: int, person: int) -> tuple[GroundTruth, set[int]]:
    """Person boxes (class 0, pixels) of one label file and every class id it holds."""
    if not path.is_file():
        return (np.zeros(0, np.int64), np.zeros((0, 4), np.float32)), set()
    cls, norm = parse_yolo_labels(path.read_text(), 1, 1, str(path))
    if len(norm) and (norm.min() < -COORD_SLACK or norm.max() > 1 + COORD_SLACK):
        raise CctvkitError("box coordinates outside 0..1, outside the image (pixels instead of normalised?)",
                           path, "write YOLO labels as `class cx cy w h` divided by the image width and height")
    keep = cls == person
    xyxy = (norm[keep].clip(0.0, 1.0) * np.array([w, h, w, h], np.float32)).astype(np.float32)
    return (np.zeros(int(keep.sum()), np.int64), xyxy), {int(c) for c in cls}


def load_yolo_folder(root: str | Path, *, max_frames: int = 0, person_class: int | None = None,
                     only: Collection[Path] | None = None) -> LabelledSet:
    """Up to max_frames labelled frames (0: all) spread over the folder, or over `only` (a subset of its
    images, e.g. the held-out ones) when given."""
    root = Path(root)
    images = list_labelled(root)
    person = person_class_of(root, person_class)
    if only is not None:
        wanted = {Path(p).resolve() for p in only}
        images = [p for p in images if p.resolve() in wanted]
    frames, gts, names = [], [], []
    seen: set[int] = set()
    for p in spread(images, max_frames, zero_means_all=True):
        img = read_image(p)
        gt, classes = load_label_file(label_path_for(p), img.shape[1], img.shape[0], person)
        seen |= classes
        frames.append(img)
        gts.append(gt)
        names.append(p.relative_to(root).as_posix())
    if seen and person not in seen:
        raise CctvkitError(f"the labels hold classes {sorted(seen)} but no class {person} (person)",
                           labels_root(root), "pass the id your labels use for person (--label-class)")
    info = {"source": "labels", "pseudo_labels": False, "path": str(root.resolve()),
            "images_in_folder": len(list_labelled(root)) if only is not None else len(images),
            "person_class_in_labels": person, "description": f"real labels (YOLO, class {person} = person) "
            f"in {root}"}
    return LabelledSet(frames, gts, names, info=info)


def load_negatives(folder: str | Path, max_frames: int = 0) -> list[np.ndarray]:
    """Person-free frames (e.g. empty-scene plates), spread over the sorted list."""
    folder = Path(folder)
    fix = "pass a folder of frames with no person in them (e.g. ../shared/data/thermal-harbour/backgrounds)"
    images = sorted(list_images(folder), key=natural_key) if folder.is_dir() else []
    if not folder.is_dir():
        raise CctvkitError("negatives folder not found", folder, fix)
    if not images:
        raise CctvkitError("no images in the negatives folder", folder, fix)
    return [read_image(p, "replace or delete it") for p in spread(images, max_frames, zero_means_all=True)]


def with_negatives(data: LabelledSet, folder: str | Path | None, max_frames: int = 0) -> LabelledSet:
    """The set plus a folder of person-free frames (None: unchanged)."""
    if folder is None:
        return data
    data.negatives = load_negatives(folder, max_frames)
    data.info["negatives"] = {"source": "user", "path": str(Path(folder).resolve()),
                              "frames": len(data.negatives), "description": f"person-free frames from {folder}"}
    return data
