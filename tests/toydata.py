"""A tiny synthetic person data set (dark upright bars on textured noise) for smoke tests and self-checks.

Test-only (the package does not ship it). Training on it takes seconds and needs no files from anywhere,
so tests, the zero-network check among them, can run the real Ultralytics train/export path end to end.
The numbers it gives mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.formats.yolo import save_data_yaml, save_yolo_labels


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Low-frequency texture plus noise, so "person" is not just "any dark pixel".
    coarse = rng.integers(90, 200, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img += rng.integers(-20, 21, size=(h, w, 3), dtype=np.int16)
    return img.clip(0, 255).astype(np.uint8)


def _person_box(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    bh = int(rng.integers(h // 4, h // 2))
    bw = max(3, int(bh * rng.uniform(0.3, 0.45)))
    x1 = int(rng.integers(1, w - bw - 1))
    y1 = int(rng.integers(1, h - bh - 1))
    return x1, y1, x1 + bw, y1 + bh


def _draw_person(img: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    x1, y1, x2, y2 = box
    shade = int(rng.integers(10, 50))
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (shade, shade, shade), thickness=-1)
    head = max(2, (x2 - x1) // 2)
    cv2.circle(img, ((x1 + x2) // 2, y1 + head // 2), head // 2, (shade,) * 3, thickness=-1)


def make_toy_detect_dataset(
    root: Path, n_train: int = 32, n_val: int = 8, size: tuple[int, int] = (96, 96), seed: int = 0
) -> Path:
    """YOLO layout root/images/{train,val}, root/labels/{train,val}, root/data.yaml (names: person).

    Every image holds one or two people; returns the data.yaml path.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = _background(rng, h, w)
            boxes = [_person_box(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
            for box in boxes:
                _draw_person(img, box, rng)
            name = f"{split}_{i:04d}"
            cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), img)
            save_yolo_labels(
                root / "labels" / split / f"{name}.txt",
                np.zeros(len(boxes), np.int64),
                np.asarray(boxes, np.float32),
                w,
                h,
            )
    return save_data_yaml(root / "data.yaml", ["person"], {"train": "images/train", "val": "images/val"})


def make_toy_classify_dataset(
    root: Path, n_train: int = 16, n_val: int = 6, size: tuple[int, int] = (64, 64), seed: int = 1
) -> Path:
    """root/{train,val}/{person,no_person}/*.jpg with n_* images per class; returns root."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        for cls in ("person", "no_person"):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = _background(rng, h, w)
                if cls == "person":
                    _draw_person(img, _person_box(rng, h, w), rng)
                cv2.imwrite(str(folder / f"{i:04d}.jpg"), img)
    return root


def toy_models(root: Path, det_imgsz: int = 64, cls_imgsz: int = 32) -> dict[str, Path]:
    """Make the toy data sets and train a 1-epoch detector and classifier under root, once (reused when
    root/models/ already holds both). Returns paths: detect_yaml, classify_root, detector, classifier."""
    from trainer.yolo.train import train_classifier, train_detector

    paths = {
        "detect_yaml": root / "data" / "detect" / "data.yaml",
        "classify_root": root / "data" / "classify",
        "detector": root / "models" / "detector.pt",
        "classifier": root / "models" / "classifier.pt",
    }
    if not paths["detect_yaml"].is_file():
        make_toy_detect_dataset(root / "data" / "detect")
        make_toy_classify_dataset(paths["classify_root"])
    for model, train, data, imgsz in (("detector", train_detector, paths["detect_yaml"], det_imgsz),
                                      ("classifier", train_classifier, paths["classify_root"], cls_imgsz)):
        if not paths[model].is_file():
            train(data, root / "models", epochs=1, imgsz=imgsz, batch=8, workers=0, progress=False)
    return paths
