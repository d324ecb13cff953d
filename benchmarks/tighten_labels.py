"""Do tightened teacher boxes make better labels? The teacher arm's scene stage twice on the same frames
(scene.teacher.tighten off / on), each scene's pseudo-labels scored against the REAL labels of the same
training frames (trainer/experiment/pseudo.py: P / R at IoU 0.5, mean IoU of matched boxes, and the
share of matches at IoU >= 0.75, which is what mAP50-95 rewards). No training: labels only.

    python benchmarks/tighten_labels.py EXPERIMENT.yaml --out /tmp/tighten   (a config with a teacher)

The split is the experiment's own (the same config gives the same split); the test frames are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.eval.coco import iou_matrix
from edge.eval.labelled import load_label_file, read_image
from edge.formats.yolo import label_path_for, list_images, load_yolo_labels
from edge.manifest import Manifest
from trainer import pipeline
from trainer.experiment.arms import write_frame_folder
from trainer.experiment.config import arm_pipeline, load_experiment_config, resolve_budget, teacher_file
from trainer.experiment.pseudo import pseudo_label_quality
from trainer.experiment.split import make_split


def strict_share(scene_dir: Path, split: Any, thr: float = 0.75) -> float | None:
    """Share of the real boxes matched by a pseudo-label at IoU >= thr (greedy, best first)."""
    frames = split.of("train", "val")
    hit = total = 0
    for img in list_images(scene_dir / "frames" / "images"):
        h, w = read_image(img).shape[:2]
        _, boxes = load_yolo_labels(label_path_for(img), w, h)
        label = frames[int(img.stem.lstrip("f"))].label
        gt = load_label_file(label, w, h, 0)[0][1] if label is not None else np.zeros((0, 4))
        total += len(gt)
        if len(gt) and len(boxes):
            m = iou_matrix(np.asarray(gt, np.float32), np.asarray(boxes, np.float32))
            hit += int((m.max(axis=1) >= thr).sum())
    return round(hit / total, 3) if total else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    cfg = load_experiment_config(args.config)
    teacher = teacher_file(cfg)
    if teacher is None:
        print(f"{args.config}: no teacher: the tightening applies to teacher boxes (set teacher:)", file=sys.stderr)
        return 2
    pipe = arm_pipeline(cfg, resolve_budget(cfg), args.config)
    split = make_split(Path(cfg.data), Path(cfg.negatives) if cfg.negatives else None, cfg.split,
                       Path(cfg.test_data) if cfg.test_data else None)
    out = Path(args.out)
    folder = out / "frames"
    if not folder.is_dir():
        write_frame_folder(split, folder)
    rows: dict[str, Any] = {}
    for on in (False, True):
        name = "tight" if on else "loose"
        p = pipe.model_copy(deep=True)
        p.scene.teacher.tighten.enabled = on
        m = Manifest.create(out / name, name)
        m.run_dir.mkdir(parents=True, exist_ok=True)
        m.save()
        entry = pipeline.run_scene(m, folder, p, progress=False, teacher=teacher)
        scene = m.run_dir / "scene"
        q = pseudo_label_quality(scene, split) or {}
        q["real_boxes_matched_iou75"] = strict_share(scene, split)
        q["tightened"] = (entry["summary"].get("teacher") or {}).get("label_boxes_tightened")
        rows[name] = q
        print(name, json.dumps(q), flush=True)
    (out / "tighten.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
