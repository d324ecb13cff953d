"""The held-out labelled frames the export verification scores every model on.

Either the user's YOLO folder (images/ + labels/, e.g. ../shared/data/thermal-harbour) with an optional
folder of person-free frames for the classifier, or by default the run's scene holdout: pseudo-labels
of held-out video frames, with the persons painted over by the background plate as classifier negatives
(the same frames and the same painting bench/evaluate.py uses, through its functions).

Everything is loaded and checked before the export spends minutes on models, so a bad folder fails
fast with one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.labelled import GroundTruth, spread
from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, list_images, load_data_yaml, load_yolo_labels, orphan_labels
from edge.manifest import Manifest


@dataclass
class VerifySet:
    """Decoded BGR frames with person boxes (class 0), and person-free frames for the classifier."""

    frames: list[np.ndarray]
    gts: list[GroundTruth]
    negatives: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)  # what the report says about where they came from

    @property
    def has_person(self) -> np.ndarray:
        return np.array([len(c) > 0 for c, _ in self.gts], bool)

    @property
    def classifier_frames(self) -> list[np.ndarray]:
        return self.frames + self.negatives

    @property
    def classifier_truth(self) -> np.ndarray:
        return np.concatenate([self.has_person, np.zeros(len(self.negatives), bool)])


def _read(path: Path, what: str, fix: str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise CctvkitError(f"cannot decode {what}", path, fix)
    return img


def _person_id(root: Path) -> int:
    """The labels' person class: from root/data.yaml when there is one, else 0 (a one-class person set)."""
    yaml = root / "data.yaml"
    if not yaml.is_file():
        return 0
    names = load_data_yaml(yaml)["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    if "person" not in names:
        raise CctvkitError(
            f"data.yaml has no 'person' class (names: {names})",
            yaml,
            "label persons, or drop data.yaml if class 0 is person",
        )
    return names.index("person")


def load_labelled_folder(
    root: str | Path, max_frames: int
) -> tuple[list[np.ndarray], list[GroundTruth], dict]:
    """A YOLO folder root/images/** + root/labels/** (same relative paths, .txt): up to max_frames frames
    spread over the sorted list, their person boxes as class 0. An image without a label file has no
    person (the YOLO convention); a label file without an image, or an image that does not decode, is an
    error naming the file."""
    root = Path(root)
    fix = "pass a YOLO folder with images/ and labels/ (e.g. ../shared/data/thermal-harbour)"
    if not root.is_dir():
        raise CctvkitError("labelled folder not found", root, fix)
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        missing = images_dir if not images_dir.is_dir() else labels_dir
        raise CctvkitError("labelled folder has no images/ or labels/ folder", missing, fix)
    images = list_images(images_dir)
    if not images:
        raise CctvkitError("no images in the labelled folder", images_dir, fix)
    for txt in orphan_labels(labels_dir, images)[:1]:
        raise CctvkitError(
            "label file has no image of the same name under images/",
            txt,
            "add the image or delete the label file",
        )
    person = _person_id(root)
    frames, gts = [], []
    n_boxes = 0
    for p in spread(images, max_frames):
        img = _read(p, "labelled image", "replace or delete the image and its label file")
        cls, xyxy = load_yolo_labels(label_path_for(p), img.shape[1], img.shape[0])
        keep = cls == person
        gts.append((np.zeros(int(keep.sum()), np.int64), xyxy[keep]))
        n_boxes += int(keep.sum())
        frames.append(img)
    info = {
        "source": "user",
        "path": str(root.resolve()),
        "pseudo_labels": False,
        "images_in_folder": len(images),
        "person_class_in_labels": person,
        "boxes": n_boxes,
        "description": f"user-labelled frames from {root}",
    }
    return frames, gts, info


def load_negatives(folder: str | Path, max_frames: int) -> list[np.ndarray]:
    """Person-free frames (e.g. empty-scene plates) for the classifier, spread over the sorted list."""
    folder = Path(folder)
    fix = "pass a folder of frames with no person in them (e.g. ../shared/data/thermal-harbour/backgrounds)"
    if not folder.is_dir():
        raise CctvkitError("negatives folder not found", folder, fix)
    images = list_images(folder)
    if not images:
        raise CctvkitError("no images in the negatives folder", folder, fix)
    return [_read(p, "negative image", "replace or delete it") for p in spread(images, max_frames)]


def load_verify_set(
    manifest: Manifest,
    labels: str | Path | None = None,
    negatives: str | Path | None = None,
    max_frames: int = 200,
) -> VerifySet:
    """The frames `verify_export` scores on: the user's folders, else the test split of an imported run
    (compose output "holdout"), else the scene stage's holdout with its pseudo-labels."""
    from bench.evaluate import erase_people, load_holdout

    stages = manifest.data.get("stages", {})
    if labels is None and "holdout" in stages.get("compose", {}).get("outputs", {}):
        labels = manifest.output("compose", "holdout")  # `trainer import`: the user's own test split
    if labels is not None:
        frames, gts, info = load_labelled_folder(labels, max_frames)
    else:
        if "scene" not in stages:
            raise CctvkitError(
                "the run has no held-out frames to verify the export on",
                manifest.path,
                "pass --labels DIR (a YOLO images/ + labels/ folder)",
            )
        frames, gts = load_holdout(manifest, max_frames)
        info = {
            "source": "holdout",
            "path": str(manifest.output("scene", "holdout")),
            "pseudo_labels": True,
            "boxes": int(sum(len(c) for c, _ in gts)),
            "description": "PSEUDO-labels (background difference + HOG) of the run's held-out video frames; "
            "pass --labels DIR for hand-checked labels",
        }
    if negatives is not None:
        neg = load_negatives(negatives, max_frames)
        info["negatives"] = {
            "source": "user",
            "path": str(Path(negatives).resolve()),
            "frames": len(neg),
            "description": f"person-free frames from {negatives}",
        }
    elif labels is None:
        plate = _read(manifest.output("scene", "plate.png"), "background plate", "re-run `trainer scene`")
        neg = [erase_people(f, xyxy, plate) for f, (_, xyxy) in zip(frames, gts, strict=True)]
        info["negatives"] = {
            "source": "holdout",
            "frames": len(neg),
            "description": "the held-out frames with their labelled persons painted over by "
            "the background plate",
        }
    else:
        neg = []
        info["negatives"] = {
            "source": "none",
            "frames": 0,
            "description": "none given (--negatives DIR): the classifier is scored on the "
            "labelled frames only",
        }
    info["frames"] = len(frames)
    info["frames_with_person"] = int(sum(len(c) > 0 for c, _ in gts))
    return VerifySet(frames, gts, neg, info)
