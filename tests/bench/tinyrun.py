"""Builders of a tiny run for `bench run`: a scene holdout with one known person per frame and real model files whose
outputs are known (constant-head ONNX detector and classifier, a 1x1-conv ncnn detector, a corrupt file)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from edge_builders import edge_builders

from edge.formats.yolo import save_yolo_labels
from edge.manifest import Manifest
from edge.types import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
FRAME = (96, 96)  # h, w of the held-out frames
BOX = np.array([[30, 20, 54, 80]], np.float32)  # the one person of every held-out frame (pixels)
N_HOLDOUT = 6


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(120, 200, size=(*FRAME, 3), dtype=np.uint8)


def with_person(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    x1, y1, x2, y2 = BOX[0].astype(int)
    out[y1:y2, x1:x2] = 30
    return out


def _head(box_in_input: np.ndarray, anchors: int, score: float) -> np.ndarray:
    """(1, 5, anchors) YOLOv8 head: anchor 0 holds the box (cx, cy, w, h in input pixels) and its score."""
    x1, y1, x2, y2 = box_in_input
    head = np.zeros((1, 5, anchors), np.float32)
    head[0, :, 0] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score]
    return head


def _spec(path: str, task: str, fmt: str, imgsz: tuple[int, int], **kw: object) -> ModelSpec:
    names = ["person"] if task == "detect" else ["no_person", "person"]
    return ModelSpec(task=task, format=fmt, precision="fp32", path=path, imgsz=imgsz, class_names=names,
                     person_class=0 if task == "detect" else 1, decoding="yolov8" if task == "detect" else "probs",
                     **kw)  # type: ignore[arg-type]


def build_tiny_run(root: Path, broken: bool = False) -> Path:
    run = root / "run"
    holdout = run / "scene" / "holdout"
    (holdout / "images").mkdir(parents=True)
    plate = background(99)
    for i in range(N_HOLDOUT):
        img = with_person(background(i))
        cv2.imwrite(str(holdout / "images" / f"f{i:03d}.png"), img)
        save_yolo_labels(holdout / "labels" / f"f{i:03d}.txt", np.zeros(1, np.int64), BOX, FRAME[1], FRAME[0])
    cv2.imwrite(str(run / "scene" / "plate.png"), plate)
    m = Manifest.create(run, "tiny")
    m.record_stage("scene", params={}, outputs={"holdout": holdout, "plate.png": run / "scene" / "plate.png"})

    b = edge_builders()
    export = run / "export"
    export.mkdir()
    # ONNX detector at 64x64: the 96x96 frame is scaled by 2/3, no padding.
    b.build_const_onnx(export / "det.onnx", _head(BOX[0] * 64 / 96, 8, 0.9), (64, 64))
    m.add_model("det-onnx", _spec("export/det.onnx", "detect", "onnx", (64, 64)))
    b.build_const_onnx(export / "cls.onnx", np.array([[0.2, 0.8]], np.float32), (32, 32))
    m.add_model("cls-onnx", _spec("export/cls.onnx", "classify", "onnx", (32, 32)))
    # ncnn detector at 32x32: every anchor predicts the same box (bias only), NMS keeps one.
    x1, y1, x2, y2 = BOX[0] / 3
    bias = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9], np.float32)
    param, binf = b.build_ncnn_conv(export / "det-ncnn", np.zeros((5, 3), np.float32), bias, (32, 32))
    m.add_model("det-ncnn", _spec("export/det-ncnn.param", "detect", "ncnn", (32, 32), extra_files=[binf.name]))
    if broken:
        (export / "broken.onnx").write_bytes(b"not a protobuf at all " * 20)
        m.add_model("broken", _spec("export/broken.onnx", "detect", "onnx", (64, 64)))
    m.save()
    return run
