"""YOLO txt labels as symmetric pure functions: `class cx cy w h` per line, normalised to the image.

Lives in edge/ because the device reads labels too (bench accuracy on the user's own labelled frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from edge.atomic import atomic_write_text
from edge.errors import CctvkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def xyxy_to_yolo(xyxy: np.ndarray, img_w: int, img_h: int) -> np.ndarray:
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / img_w
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / img_h
    w = (xyxy[:, 2] - xyxy[:, 0]) / img_w
    h = (xyxy[:, 3] - xyxy[:, 1]) / img_h
    return np.stack([cx, cy, w, h], axis=1)


def yolo_to_xyxy(cxcywh: np.ndarray, img_w: int, img_h: int) -> np.ndarray:
    b = np.asarray(cxcywh, np.float64).reshape(-1, 4)
    x1 = (b[:, 0] - b[:, 2] / 2) * img_w
    y1 = (b[:, 1] - b[:, 3] / 2) * img_h
    x2 = (b[:, 0] + b[:, 2] / 2) * img_w
    y2 = (b[:, 1] + b[:, 3] / 2) * img_h
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def parse_yolo_labels(
    text: str, img_w: int, img_h: int, source: str = "<labels>"
) -> tuple[np.ndarray, np.ndarray]:
    """Text -> (class_ids (N,) int64, xyxy (N, 4) float32 in pixels)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise CctvkitError(
                f"line {n} has {len(parts)} fields, expected 5 (class cx cy w h)",
                source,
                "fix or delete the line",
            )
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise CctvkitError(f"line {n} is not numeric", source, "fix or delete the line") from None
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    arr = np.asarray(rows, np.float64)
    return arr[:, 0].astype(np.int64), yolo_to_xyxy(arr[:, 1:], img_w, img_h)


def format_yolo_labels(class_ids: np.ndarray, xyxy: np.ndarray, img_w: int, img_h: int) -> str:
    boxes = xyxy_to_yolo(xyxy, img_w, img_h).clip(0.0, 1.0)
    return "".join(
        f"{int(c)} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
        for c, b in zip(np.asarray(class_ids).reshape(-1), boxes, strict=True)
    )


def load_yolo_labels(path: str | Path, img_w: int, img_h: int) -> tuple[np.ndarray, np.ndarray]:
    """A missing label file means an image with no objects (the YOLO convention)."""
    path = Path(path)
    if not path.exists():
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    return parse_yolo_labels(path.read_text(), img_w, img_h, str(path))


def save_yolo_labels(
    path: str | Path, class_ids: np.ndarray, xyxy: np.ndarray, img_w: int, img_h: int
) -> Path:
    return atomic_write_text(path, format_yolo_labels(class_ids, xyxy, img_w, img_h))


def label_path_for(image_path: str | Path) -> Path:
    """images/<split>/x.jpg -> labels/<split>/x.txt (the last 'images' path part is swapped)."""
    p = Path(image_path)
    parts = list(p.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if idx is None:
        return p.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


# Files label tools put beside the .txt labels that are no image's label.
NOT_LABEL_FILES = frozenset({"classes.txt", "notes.txt", "readme.txt"})


def orphan_labels(labels_root: str | Path, images: list[Path]) -> list[Path]:
    """.txt files under labels_root that are not the label of any of `images` (label_path_for), sorted: a
    label without its image means the folders do not belong together, or were renamed."""
    expected = {label_path_for(p).resolve() for p in images}
    return [
        txt
        for txt in sorted(Path(labels_root).rglob("*.txt"))
        if txt.name.lower() not in NOT_LABEL_FILES and txt.resolve() not in expected
    ]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def save_data_yaml(path: str | Path, names: list[str], splits: dict[str, str]) -> Path:
    """Ultralytics data.yaml; `splits` maps train/val/test to folders relative to the yaml's folder.

    No `path:` key is written: Ultralytics then takes the yaml's own folder as the root, so a data set
    stays valid when its run directory is renamed or copied.
    """
    doc = {**splits, "names": dict(enumerate(names))}
    return atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))


def load_data_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CctvkitError(f"cannot read data.yaml ({e})", path, "point at a YOLO data.yaml") from e
    if not isinstance(doc, dict) or "names" not in doc:
        raise CctvkitError("data.yaml has no 'names'", path, "add names: {0: person}")
    return doc
