"""Run every model of a run through the edge runtime on the held-out frames: speed and accuracy.

This is the demo's last stage and the seed of `bench run`: it imports only edge/ (no torch), so the same
code runs on the Pi. Detection mAP is measured against the scene stage's PSEUDO-labels of the held-out
frames; the classifier is scored on the same frames (person present = any pseudo-label) plus the same
frames with their labelled persons painted over by the background plate (no person present).
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
from rich.progress import track

from edge.backends import DEFAULT_BACKEND
from edge.detector import Classifier, Detector, load_from_manifest
from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, list_images, load_yolo_labels
from edge.manifest import Manifest
from edge.metrics.map import evaluate_detections, presence_metrics
from edge.types import Detections

SCHEMA_VERSION = 1


def load_holdout(manifest: Manifest, max_frames: int) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    holdout = manifest.output("scene", "holdout")
    images = list_images(holdout / "images")
    if not images:
        raise CctvkitError("no held-out frames", holdout / "images", "re-run `trainer scene` on a longer video")
    step = max(1, len(images) // max_frames)
    frames, gts = [], []
    for p in images[::step][:max_frames]:
        img = cv2.imread(str(p))
        if img is None:
            raise CctvkitError("cannot decode held-out frame", p, "re-run `trainer scene`")
        frames.append(img)
        gts.append(load_yolo_labels(label_path_for(p), img.shape[1], img.shape[0]))
    return frames, gts


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


def _latency_row(e2e_ms: list[float], infer_ms: list[float]) -> dict[str, float]:
    e2e = np.asarray(e2e_ms)
    inf = np.asarray(infer_ms)
    return {
        "fps_e2e": float(1000.0 / e2e.mean()),
        "fps_infer": float(1000.0 / inf.mean()),
        "latency_p50_ms": float(np.percentile(e2e, 50)),
        "latency_p95_ms": float(np.percentile(e2e, 95)),
        "infer_p50_ms": float(np.percentile(inf, 50)),
    }


def bench_detector(det: Detector, frames: list[np.ndarray], gts: list[tuple[np.ndarray, np.ndarray]],
                   label: str, progress: bool) -> dict[str, Any]:
    preds: list[Detections] = []
    e2e, infer = [], []
    for frame in track(frames, description=f"{label:<24}", disable=not progress, transient=True):
        t0 = time.perf_counter()
        d = det.detect(frame)
        e2e.append((time.perf_counter() - t0) * 1000)
        infer.append(det.timing.infer_ms)
        preds.append(d)
    acc = evaluate_detections(preds, gts, class_ids=[0])
    truth = np.array([len(c) > 0 for c, _ in gts])
    presence = presence_metrics(np.array([len(p) > 0 for p in preds]), truth)
    return {**_latency_row(e2e, infer), "map50": acc["map50"], "map50_95": acc["map50_95"],
            "precision": acc["precision"], "recall": acc["recall"], "presence_f1": presence["f1"]}


def bench_classifier(cls: Classifier, frames: list[np.ndarray], truth: np.ndarray, label: str,
                     progress: bool) -> dict[str, Any]:
    verdicts, e2e, infer = [], [], []
    for frame in track(frames, description=f"{label:<24}", disable=not progress, transient=True):
        t0 = time.perf_counter()
        c = cls.classify(frame)
        e2e.append((time.perf_counter() - t0) * 1000)
        infer.append(cls.timing.infer_ms)
        verdicts.append(c.is_person)
    presence = presence_metrics(np.asarray(verdicts), truth)
    return {**_latency_row(e2e, infer), "accuracy": presence["accuracy"], "presence_f1": presence["f1"]}


def evaluate_run(manifest: Manifest, *, threads: int = 2, conf: float = 0.25, iou: float = 0.45,
                 max_frames: int = 120, progress: bool = True) -> dict[str, Any]:
    frames, gts = load_holdout(manifest, max_frames)
    plate_path = manifest.output("scene", "plate.png")
    plate = cv2.imread(str(plate_path))
    if plate is None:
        raise CctvkitError("cannot decode the background plate", plate_path, "re-run `trainer scene`")
    erased = [erase_people(f, xyxy, plate) for f, (_, xyxy) in zip(frames, gts, strict=True)]
    has_person = np.array([len(c) > 0 for c, _ in gts])
    cls_frames = frames + erased
    cls_truth = np.concatenate([has_person, np.zeros(len(erased), bool)])
    rows = []
    for name, spec in manifest.models().items():
        kw: dict[str, Any] = {"conf": conf, "iou": iou, "classes": [spec.person_class]} if spec.task == "detect" else {}
        model = load_from_manifest(manifest, name, threads=threads, **kw)
        row: dict[str, Any] = {"model": name, "task": spec.task, "format": spec.format,
                               "precision": spec.precision, "backend": _backend_name(model, spec.format),
                               "imgsz": list(spec.imgsz), "threads": threads}
        if isinstance(model, Detector):
            row.update(bench_detector(model, frames, gts, name, progress))
            row["frames"] = len(frames)
        else:
            row.update(bench_classifier(model, cls_frames, cls_truth, name, progress))
            row["frames"] = len(cls_frames)
        rows.append(row)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": manifest.data.get("run"),
        "frames": len(frames),
        "frames_with_person": int(has_person.sum()),
        "labels": "pseudo-labels (background difference + HOG) of held-out video frames",
        "classifier_negatives": "the same frames with labelled persons painted over by the background plate",
        "latency": "end-to-end = preprocess + inference + postprocess on a decoded frame; infer = runtime only",
        "rows": rows,
    }


def _backend_name(model: Detector | Classifier, fmt: str) -> str:
    return str(getattr(model.backend, "name", None) or DEFAULT_BACKEND.get(fmt, fmt))
