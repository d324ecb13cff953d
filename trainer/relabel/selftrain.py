"""Self-training: the first detector relabels the real frames it was trained on, then it trains again.

The scene's pseudo-labels (background difference + HOG, or a teacher) miss people who stand still and
cut boxes at shadows; a detector trained on them plus the composed images generalises past some of
those misses. So after round 0 the detector runs over the real training frames (down to a low score),
its boxes are linked over time by trainer/relabel/tracks.py where the footage is dense enough (else a
plain threshold), and fused with the previous labels (the motion evidence): "detector" keeps the
detector's boxes only, "union" adds the previous boxes no detector box covers, "auto" picks union when
the detector finds far fewer people than the previous labels (it has not learnt the viewpoint yet).
The next round trains from the previous round's weights on the composed images + the relabelled real
frames. Composed images keep their exact labels: they are never relabelled.

Every round leaves its labels (self-training/round-K/labels/<scene frame>.txt) and its weights
(detector-round-K.pt), so the experiment can score each round's labels and detector on real labels.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from edge.atomic import atomic_write_text
from edge.formats.yolo import format_yolo_labels, parse_yolo_labels, save_data_yaml
from edge.strict import Strict
from edge.types import Detections
from trainer.relabel.fuse import agreement, fuse_boxes
from trainer.relabel.tracks import TrackParams, link_or_threshold


class SelfTrainParams(Strict):

    rounds: int = Field(0, ge=0, description="relabel-and-retrain rounds after the first detector")
    epochs: int | None = Field(None, ge=1, description="epochs per round; default: half of detector_epochs")
    conf: float = Field(0.25, gt=0.0, lt=1.0, description="the detector's score that makes a label")
    fuse: Literal["auto", "detector", "union"] = "union"
    auto_ratio: float = Field(0.5, gt=0.0, description="fuse auto: union when the detector finds fewer "
                              "than this share of the previous labels' people")
    track: bool = True
    tracking: TrackParams = TrackParams()


@dataclass(frozen=True)
class RealImage:
    """A real frame of the composed data set: its image and label there, its frame and scene file stem."""

    image: Path
    label: Path
    frame: int
    stem: str


def real_images(compose_dir: Path) -> list[RealImage]:
    """The pseudo-labelled real frames of compose.json (train and val), in time order. An imported data set
    (trainer/importer.py: real labels, no compose.json) has none; nor have the real-labelled frames a
    hybrid arm adds (they are not in compose.json): real labels are never relabelled."""
    if not (compose_dir / "compose.json").is_file():
        return []
    doc = json.loads((compose_dir / "compose.json").read_text())
    out = [RealImage(compose_dir / r["image"], compose_dir / r["label"], int(r["frame"]), Path(r["frame_file"]).stem)
           for r in doc["images"] if r.get("source") == "real"]
    return sorted(out, key=lambda r: r.frame)


def _read_boxes(label: Path, w: int, h: int) -> np.ndarray:
    if not label.is_file():
        return np.zeros((0, 4), np.float32)
    cls, xyxy = parse_yolo_labels(label.read_text(), w, h, str(label))
    return xyxy[cls == 0]


def predict_person(weights: Path, images: list[Path], imgsz: int, low_conf: float, device: str,
                   person: int = 0) -> list[Detections]:
    """The detector's person boxes down to low_conf (pixel xyxy of each image), through Ultralytics."""
    from export.offline import load_model

    yolo = load_model("detect", weights)
    out = []
    for path in images:
        r = yolo.predict(str(path), imgsz=imgsz, conf=low_conf, iou=0.6, classes=[person], max_det=300,
                         device=device, verbose=False)[0]
        b = r.boxes
        out.append(Detections(b.xyxy.cpu().numpy().astype(np.float32), b.conf.cpu().numpy().astype(np.float32),
                              np.zeros(len(b), np.int64)))
    return out


def relabel(dets: list[Detections], prior: list[np.ndarray], p: SelfTrainParams) -> tuple[list[np.ndarray], dict]:
    """New labels of frames in time order from the detector's boxes and the previous labels."""
    linked, how, share = link_or_threshold(dets, p.conf, p.track, p.tracking, "the detector's")
    n_det, n_prior = sum(len(b) for b in linked.boxes), sum(len(b) for b in prior)
    mode = p.fuse
    if mode == "auto":
        mode = "union" if n_prior and n_det < p.auto_ratio * n_prior else "detector"
    # Only the detector's kept boxes cover a previous label: one it scored below conf is not evidence
    # against the motion finder's box (a first detector is under-confident; measured on thermal-harbour,
    # covering by every candidate dropped 15 % of the labels and cost recall).
    labels = [fuse_boxes(kept, kept, old, "teacher" if mode == "detector" else "union")
              for kept, old in zip(linked.boxes, prior, strict=True)]
    summary = {"labels": how, "linkable_share": round(share, 3), "fuse": mode, "tracking": linked.stats,
               "boxes_before": n_prior, "boxes_after": sum(len(b) for b in labels), "boxes_from_detector": n_det,
               "agreement": agreement(prior, list(linked.boxes), "previous", "detector")}
    return labels, summary


def _round_dataset(detect_dir: Path, dst: Path, new_labels: dict[Path, str]) -> Path:
    """detect_dir's data set with the given label files replaced: images symlinked, labels written."""
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            (dst / kind / split).mkdir(parents=True, exist_ok=True)
        for img in sorted((detect_dir / "images" / split).iterdir()):
            os.symlink(img.resolve(), dst / "images" / split / img.name)
            src = detect_dir / "labels" / split / f"{img.stem}.txt"
            text = new_labels.get(src)
            if text is None and src.is_file():
                text = src.read_text()
            (dst / "labels" / split / f"{img.stem}.txt").write_text(text or "")
    return save_data_yaml(dst / "data.yaml", ["person"], {"train": "images/train", "val": "images/val"})


def self_train(first: Any, compose_dir: Path, out: Path, p: SelfTrainParams, train: Callable[..., Any],
               *, imgsz: int, epochs: int, device: str, progress: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """Rounds 1..p.rounds after `first` (round 0's TrainResult, its weights at out/detector.pt).

    train(data_yaml, weights, epochs, round) -> TrainResult trains one round into out/. Returns the last round's
    TrainResult and one record per round (round 0 included)."""
    real = real_images(compose_dir)
    records = [_record(0, first, None)]
    if not p.rounds:
        return first, records
    if not real:
        records[0]["self_training_skipped"] = "no pseudo-labelled real frame in the data set to relabel"
        return first, records
    result = first
    sizes = [cv2.imread(str(r.image), cv2.IMREAD_UNCHANGED).shape[:2] for r in real]
    prior = [_read_boxes(r.label, w, h) for r, (h, w) in zip(real, sizes, strict=True)]
    per_round = p.epochs or max(1, epochs // 2)
    for k in range(1, p.rounds + 1):
        t0 = time.perf_counter()
        prev = out / f"detector-round-{k - 1}.pt"
        shutil.copy2(result.weights, prev)
        dets = predict_person(prev, [r.image for r in real], imgsz, p.tracking.low_conf, device)
        labels, info = relabel(dets, prior, p)
        texts = {r.label: format_yolo_labels(np.zeros(len(b), np.int64), b, w, h)
                 for r, b, (h, w) in zip(real, labels, sizes, strict=True)}
        keep = out / "self-training" / f"round-{k}" / "labels"
        keep.mkdir(parents=True)
        for r in real:
            atomic_write_text(keep / f"{r.stem}.txt", texts[r.label])
        work = out / "ultralytics" / f"round-{k}"
        shutil.rmtree(work, ignore_errors=True)
        data_yaml = _round_dataset(compose_dir / "detect", work, texts)
        info["relabel_seconds"] = round(time.perf_counter() - t0, 1)
        result = train(data_yaml, prev, per_round, k)
        records.append(_record(k, result, info))
        prior = labels
    shutil.copy2(result.weights, out / f"detector-round-{p.rounds}.pt")
    return result, records


def _record(k: int, res: Any, relabel_info: dict[str, Any] | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"round": k, "epochs": res.epochs, "seconds": round(res.seconds, 1),
                           "val_on_pseudo_labels": res.metrics}
    if relabel_info is not None:
        rec["relabel"] = relabel_info
    return rec
