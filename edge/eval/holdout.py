"""A run's held-out frames as a LabelledSet: with real labels (--labels) or with the scene's pseudo-labels.

The scene stage holds out the last part of its input and records every input frame's key in
scene/frame_keys.json (a frame folder: the file stem; a video: the frame index). Real labels are matched
to input frames by that key, and only labelled frames of the held-out part count: no stage trained on
them. The pseudo-labelled fallback is the scene's own holdout/ (agreement with our person finder, not
accuracy), with the same frames painted over by the background plate as person-free frames.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.eval.labelled import LabelledSet, list_labelled, load_yolo_folder, read_image
from edge.formats.yolo import label_path_for, list_images, load_yolo_labels
from edge.manifest import Manifest
from edge.sampling import spread
from edge.stages import SCENE, SceneOut

PSEUDO_DESCRIPTION = ("PSEUDO-labels (background difference + HOG) of the run's held-out frames: agreement "
                      "with the person finder, not accuracy; pass --labels DIR for real labels")
ERASED_DESCRIPTION = "the held-out frames with their labelled persons painted over by the background plate"


def erase_people(frame: np.ndarray, xyxy: np.ndarray, plate: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Paint each labelled person (box grown by `margin`) with the background plate."""
    out = frame.copy()
    h, w = frame.shape[:2]
    for x1, y1, x2, y2 in xyxy:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        a, b = int(max(0, x1 - mx)), int(max(0, y1 - my))
        c, d = int(min(w, x2 + mx)), int(min(h, y2 + my))
        out[b:d, a:c] = plate[b:d, a:c]
    return out


def scene_holdout(manifest: Manifest, max_frames: int) -> LabelledSet:
    """The scene stage's pseudo-labelled held-out frames, plus the same frames with the people erased."""
    holdout = manifest.output(SCENE.name, SceneOut.holdout.name)
    images = list_images(holdout / "images")
    if not images:
        raise CctvkitError("no held-out frames", holdout / "images", "re-run `trainer scene` on a longer input")
    frames, gts, names = [], [], []
    for p in spread(images, max_frames, zero_means_all=True):
        img = read_image(p, "re-run `trainer scene`")
        cls, xyxy = load_yolo_labels(label_path_for(p), img.shape[1], img.shape[0])
        frames.append(img)
        gts.append((np.zeros(int((cls == 0).sum()), np.int64), xyxy[cls == 0]))
        names.append(p.name)
    plate_path = manifest.output(SCENE.name, SceneOut.plate.name)
    plate = cv2.imread(str(plate_path))
    if plate is None:
        raise CctvkitError("cannot decode the background plate", plate_path, "re-run `trainer scene`")
    erased = [erase_people(f, xyxy, plate) for f, (_, xyxy) in zip(frames, gts, strict=True)]
    info = {"source": "holdout", "pseudo_labels": True, "path": str(holdout), "description": PSEUDO_DESCRIPTION,
            "negatives": {"source": "holdout", "frames": len(erased), "description": ERASED_DESCRIPTION}}
    return LabelledSet(frames, gts, names, negatives=erased, info=info)


def frame_key(stem: str, kind: str) -> str:
    """The key of a labelled frame's file stem: the stem for frame folders; for a video the frame index,
    the stem's last number (frame_000398 -> 398)."""
    if kind != "video":
        return stem
    numbers = re.findall(r"\d+", stem)
    return str(int(numbers[-1])) if numbers else stem


def _frame_keys(manifest: Manifest) -> dict:
    path = manifest.output(SCENE.name, SceneOut.frame_keys.name)
    try:
        doc = json.loads(path.read_text())
        return {"kind": str(doc["kind"]), "keys": [str(k) for k in doc["keys"]],
                "holdout_start": int(doc["holdout_start"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CctvkitError(f"unreadable frame key list ({e})", path, "re-run `trainer scene`") from None


def sort_labelled(manifest: Manifest, labels: str | Path) -> dict[str, list[Path]]:
    """The labelled images of `labels` by where their frame lies in the run's input: "held_out",
    "training", or "foreign" (not a frame of the input at all). Decodes nothing."""
    keys = _frame_keys(manifest)
    index = {k: i for i, k in enumerate(keys["keys"])}
    out: dict[str, list[Path]] = {"held_out": [], "training": [], "foreign": []}
    for p in list_labelled(labels):
        if not label_path_for(p).is_file():
            continue
        i = index.get(frame_key(p.stem, keys["kind"]))
        out["foreign" if i is None else "held_out" if i >= keys["holdout_start"] else "training"].append(p)
    return out


def held_out_labelled(manifest: Manifest, labels: str | Path) -> tuple[list[Path], int]:
    """The labelled images of `labels` that are frames of the run's held-out part (matched by key), and
    how many labelled frames lie in the training part (never scored). Decodes nothing, so the demo can
    check --labels right after the scene stage, before training."""
    labels = Path(labels)
    parts = sort_labelled(manifest, labels)
    n = sum(len(v) for v in parts.values())
    if parts["foreign"]:
        first = parts["foreign"][0]
        raise CctvkitError(f"{len(parts['foreign'])} of {n} labelled frames are not frames of the run's input "
                           f"(e.g. {first.name})", label_path_for(first),
                           "pass labels of the same video or frame folder the run was built from")
    if not parts["held_out"]:
        keys = _frame_keys(manifest)
        total = len(keys["keys"])
        raise CctvkitError(f"no labelled frame lies in the held-out part (input frames "
                           f"{keys['holdout_start']}-{total - 1} of {total}); training frames are never scored",
                           labels, "label frames from the last part of the input, or hold out more "
                           "(scene.holdout_fraction)")
    return parts["held_out"], len(parts["training"])


def real_holdout(manifest: Manifest, labels: str | Path, max_frames: int,
                 person_class: int | None = None) -> LabelledSet:
    """The labelled frames of `labels` that are frames of the run's held-out part."""
    held, in_training = held_out_labelled(manifest, labels)
    data = load_yolo_folder(labels, max_frames=max_frames, person_class=person_class, only=held)
    data.info.update({"held_out_labelled_frames": len(held), "labelled_frames_in_training_part": in_training,
                      "description": f"REAL labels of the run's held-out frames ({len(held)} labelled), "
                      f"from {labels}"})
    return data


def run_labels(manifest: Manifest) -> Path | None:
    """The real labels recorded with the run (`--labels` on `trainer demo` / `trainer scene`), if any."""
    doc = manifest.data.get("eval_labels")
    return Path(doc["path"]) if isinstance(doc, dict) and doc.get("path") else None


def record_run_labels(manifest: Manifest, labels: str | Path) -> dict:
    """Check --labels against the run's input and record it in the manifest, for evaluation only."""
    held, in_training = held_out_labelled(manifest, labels)
    entry = {"path": str(Path(labels).resolve()), "held_out_labelled_frames": len(held),
             "labelled_frames_in_training_part": in_training,
             "use": "evaluation only: never read by scene, compose or train"}
    manifest.data["eval_labels"] = entry
    manifest.save()
    return entry
