"""How good the label-free arms' labels are: the scene's pseudo-labels against the real labels of the same
training frames, scored by edge/eval.

Run after every arm has trained (no label is opened while a label-free arm is built). The figure says why
a label-free arm lands where it does: a detector learns its labeller's ceiling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.eval import score_detections
from edge.eval.coco import iou_matrix
from edge.eval.labelled import load_label_file, read_image
from edge.formats.yolo import label_path_for, list_images, load_yolo_labels
from edge.stages import SceneOut
from edge.types import Detections

from .split import ExperimentSplit


def pseudo_label_quality(scene_dir: Path, split: ExperimentSplit, labels_dir: Path | None = None,
                         what: str | None = None) -> dict[str, Any] | None:
    """P / R / F1 at IoU 0.5, mean IoU of the matched boxes and count MAE of scene_dir/frames (pseudo-labelled
    training frames) against the real labels; None when the scene stage did not run. labels_dir: score these
    label files (<frame stem>.txt, e.g. a self-training round's) instead of the scene's; a frame without
    one there is left out."""
    keys_path = scene_dir / SceneOut.frame_keys.name
    images = list_images(scene_dir / SceneOut.frames.name / "images")
    if not keys_path.is_file() or not images:
        return None
    n_keys = len(json.loads(keys_path.read_text())["keys"])
    frames = split.of("train", "val")  # the frame folder, in its order (arms.write_frame_folder)
    if n_keys != len(frames):
        return None
    preds, gts, ious = [], [], []
    for img in images:
        index = int(img.stem.lstrip("f"))  # trainer/scene/run.py names them f<input index>
        own = label_path_for(img) if labels_dir is None else labels_dir / f"{img.stem}.txt"
        if labels_dir is not None and not own.is_file():
            continue
        h, w = read_image(img).shape[:2]
        _, boxes = load_yolo_labels(own, w, h)
        label = frames[index].label
        gt = load_label_file(label, w, h, 0)[0] if label is not None else (np.zeros(0, np.int64), np.zeros((0, 4)))
        preds.append(Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes))))
        gts.append(gt)
        if len(boxes) and len(gt[1]):
            best = iou_matrix(boxes, gt[1]).max(axis=1)
            ious += best[best >= 0.5].tolist()
    r = score_detections(preds, gts, conf=0.5)
    return {"frames": len(preds), "pseudo_boxes": int(sum(len(p) for p in preds)), "real_boxes": r["n_gt"],
            "precision": r["box_precision"], "recall": r["box_recall"], "f1": r["box_f1"],
            "mean_iou_matched": float(np.mean(ious)) if ious else None, "count_mae": r["count_mae"],
            "what": what or "the scene's pseudo-labels (background difference + HOG) of training frames against "
                            "the real labels of the same frames, IoU 0.5"}
