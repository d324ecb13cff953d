"""Read and check the scene stage's folder before anything is written: plate, walkable mask, perspective,
person cutouts and the real pseudo-labelled frames. `holdout/` is never opened here, so no held-out frame
can leak into a training set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.formats.yolo import IMAGE_SUFFIXES
from trainer.scene.perspective import Perspective

FIX = "re-run the scene stage (`trainer scene`) to write a complete scene folder"
MIN_CUTOUT_PX = 6  # a cutout shorter than this carries no shape worth teaching


@dataclass(frozen=True)
class Cutout:
    file: str  # relative to the scene folder, as in cutouts.json
    frame: int  # source frame index: the split is made on it
    rgba: np.ndarray  # (h, w, 4) uint8, cropped to the person's box
    foot: tuple[float, float]  # foot point inside the crop (x, y)
    height_px: float  # the person's height in its source frame
    box: tuple[float, float, float, float]  # where the crop sat in its source frame (the plate's coordinates)


@dataclass(frozen=True)
class RealFrame:
    image: Path
    label: Path  # may not exist: no pseudo-label file means no person found (the YOLO convention)
    frame: int


@dataclass(frozen=True)
class Scene:
    root: Path
    plate: np.ndarray  # (H, W, 3) uint8 BGR
    walkable: np.ndarray  # (H, W) bool
    perspective: Perspective
    cutouts: list[Cutout]
    real: list[RealFrame]
    skipped_cutouts: list[str]  # empty alpha or too small: listed in the summary, not an error

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self.plate.shape[1], self.plate.shape[0]


def _need(root: Path, name: str) -> Path:
    p = root / name
    if not p.exists():
        raise CctvkitError(f"missing {name} in the scene folder", p, FIX)
    return p


def _read_image(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None or img.size == 0:
        raise CctvkitError("cannot decode image", path, FIX)
    return img


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CctvkitError(f"cannot read JSON ({e})", path, FIX) from None


def frame_index_of(stem: str, fallback: int) -> int:
    """Frame files are named after their video frame index (e.g. 000123.jpg, frame_000123.jpg)."""
    m = re.search(r"(\d+)(?!.*\d)", stem)
    return int(m.group(1)) if m else fallback


def _with_context(rgba: np.ndarray, plate: np.ndarray, corner: tuple[float, float]) -> np.ndarray:
    """Transparent pixels get the plate where the crop was cut: the person's true surroundings minus any
    other person or shadow, which is the boundary the Poisson blend adapts to the new place."""
    out = rgba.copy()
    h, w = out.shape[:2]
    x, y = int(round(corner[0])), int(round(corner[1]))
    fx1, fy1 = max(x, 0), max(y, 0)
    fx2, fy2 = min(x + w, plate.shape[1]), min(y + h, plate.shape[0])
    if fx2 <= fx1 or fy2 <= fy1:
        return out
    part = out[fy1 - y : fy2 - y, fx1 - x : fx2 - x]
    empty = part[:, :, 3] == 0
    part[:, :, :3][empty] = plate[fy1:fy2, fx1:fx2][empty]
    return out


def _load_cutouts(root: Path, plate: np.ndarray) -> tuple[list[Cutout], list[str]]:
    meta_path = _need(root, "cutouts.json")
    doc = _read_json(meta_path)
    if not isinstance(doc, list):
        raise CctvkitError("cutouts.json must be a list of cutout records", meta_path, FIX)
    cutouts: list[Cutout] = []
    skipped: list[str] = []
    for n, rec in enumerate(doc):
        try:
            file = str(rec["file"])
            frame = int(rec["frame"])
            x1, y1, x2, y2 = (float(v) for v in rec["box"])
            fx, fy = (float(v) for v in rec.get("foot", ((x1 + x2) / 2, y2)))
            height = float(rec.get("height_px", y2 - y1))
        except (KeyError, TypeError, ValueError) as e:
            raise CctvkitError(f"record {n} is malformed ({e!r})", meta_path, FIX) from None
        path = root / file
        if not path.exists():
            raise CctvkitError(f"missing {file} (listed in cutouts.json)", path, FIX)
        rgba = _read_image(path, cv2.IMREAD_UNCHANGED)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise CctvkitError("cutout is not an RGBA PNG", path, FIX)
        alpha = rgba[:, :, 3] > 127
        if alpha.sum() < MIN_CUTOUT_PX * 2 or rgba.shape[0] < MIN_CUTOUT_PX:
            skipped.append(file)
            continue
        # The crop is the person's box, so the foot point in crop coordinates is relative to its corner;
        # clamped because a box rounded to integers may shift it by a pixel.
        h, w = alpha.shape
        foot = (min(max(fx - x1, 0.0), float(w)), min(max(fy - y1, 0.0), float(h)))
        if not height > 0:
            height = float(h)
        rgba = _with_context(rgba, plate, (x1, y1))
        cutouts.append(Cutout(file, frame, rgba, foot, height, (x1, y1, x2, y2)))
    if len(cutouts) < 2:
        raise CctvkitError(
            f"{len(cutouts)} usable person cutouts, need at least 2 (one for train, one for val)",
            meta_path,
            "run the scene stage on a longer video with people walking",
        )
    return cutouts, skipped


def _list_real(root: Path) -> list[RealFrame]:
    images = root / "frames" / "images"
    if not images.is_dir():
        return []  # real frames are optional: compose then uses composites and negatives only
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    labels = root / "frames" / "labels"
    return [RealFrame(p, labels / f"{p.stem}.txt", frame_index_of(p.stem, i)) for i, p in enumerate(files)]


def load_scene(scene_dir: str | Path) -> Scene:
    root = Path(scene_dir)
    if not root.is_dir():
        raise CctvkitError("scene folder not found", root, FIX)
    plate = _read_image(_need(root, "plate.png"), cv2.IMREAD_COLOR)
    walk_path = _need(root, "walkable.png")
    walkable = _read_image(walk_path, cv2.IMREAD_GRAYSCALE) > 127
    if walkable.shape != plate.shape[:2]:
        raise CctvkitError(
            f"walkable mask is {walkable.shape[1]}x{walkable.shape[0]}, "
            f"plate is {plate.shape[1]}x{plate.shape[0]}",
            walk_path,
            FIX,
        )
    persp_path = _need(root, "perspective.json")
    doc = _read_json(persp_path)
    perspective = Perspective.from_json(doc if isinstance(doc, dict) else {}, persp_path)
    cutouts, skipped = _load_cutouts(root, plate)
    return Scene(root, plate, walkable, perspective, cutouts, _list_real(root), skipped)
