"""Read and check the scene stage's folder before anything is written: plate(s), walkable mask, perspective,
person cutouts and the real pseudo-labelled frames. `holdout/` is never opened here, so no held-out frame
can leak into a training set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.formats.yolo import IMAGE_SUFFIXES
from edge.stages import SceneOut
from trainer.scene.distractors import load_distractors
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
    # Where the crop sat in its source frame (the plate's coordinates); None for a generated person, which
    # never stood on the plate: harmonize then matches its own statistics to the place it is pasted at.
    box: tuple[float, float, float, float] | None
    source: str = "real"  # "real" (the scene's cutouts) | "generated" (the persons stage)


@dataclass(frozen=True)
class ScenePlate:
    """The background plate of one scene segment (scene.json `segments`): a stretch of one empty scene."""

    file: str  # relative to the scene folder
    image: np.ndarray  # (H, W, 3) uint8 BGR
    frames: tuple[int, int]  # first and last training frame of the segment
    weight: int  # the segment's length in frames: compose draws plates in proportion to it


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
    # One per scene segment; a scene folder without segments (older ones, hand-made ones) has just plate.png.
    plates: list[ScenePlate] = field(default_factory=list)
    # Hard negatives (trainer/scene/distractors.py): records with their RGBA; none in older scene folders.
    distractors: list[dict] = field(default_factory=list)

    def plate_for_frame(self, frame: int) -> np.ndarray:
        """The plate of the segment a training frame belongs to (plate.png when none holds it)."""
        for p in self.plates:
            if p.frames[0] <= frame <= p.frames[1]:
                return p.image
        return self.plate

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


def _load_plates(root: Path, plate: np.ndarray) -> list[ScenePlate]:
    """Segment plates listed in scene.json; [plate.png] when it lists none (or there is no scene.json)."""
    whole = [ScenePlate(SceneOut.plate.name, plate, (0, 2**62), 1)]
    meta = root / SceneOut.scene_json.name
    if not meta.exists():
        return whole
    doc = _read_json(meta)
    segments = doc.get("segments") if isinstance(doc, dict) else None
    if not segments:
        return whole
    plates = []
    for n, rec in enumerate(segments):
        try:
            file = str(rec["plate"])
            first, last = (int(v) for v in rec["frames"])
            weight = int(rec.get("n_frames", last - first + 1))
        except (KeyError, TypeError, ValueError) as e:
            raise CctvkitError(f"segment {n} is malformed ({e!r})", meta, FIX) from None
        image = _read_image(_need(root, file), cv2.IMREAD_COLOR)
        if image.shape != plate.shape:
            raise CctvkitError(f"plate is {image.shape[1]}x{image.shape[0]}, plate.png is "
                               f"{plate.shape[1]}x{plate.shape[0]}", root / file, FIX)
        plates.append(ScenePlate(file, image, (first, last), max(weight, 1)))
    return plates


def _load_cutouts(root: Path, plate_for_frame: Callable[[int], np.ndarray]) -> tuple[list[Cutout], list[str]]:
    meta_path = _need(root, SceneOut.cutouts_json.name)
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
        # The cutout's own segment plate: the surroundings it was really cut from.
        rgba = _with_context(rgba, plate_for_frame(frame), (x1, y1))
        cutouts.append(Cutout(file, frame, rgba, foot, height, (x1, y1, x2, y2)))
    if len(cutouts) < 2:
        raise CctvkitError(
            f"{len(cutouts)} usable person cutouts, need at least 2 (one for train, one for val)",
            meta_path,
            "run the scene stage on a longer video with people walking",
        )
    return cutouts, skipped


def _list_real(root: Path) -> list[RealFrame]:
    images = root / SceneOut.frames.name / "images"
    if not images.is_dir():
        return []  # real frames are optional: compose then uses composites and negatives only
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    labels = root / SceneOut.frames.name / "labels"
    return [RealFrame(p, labels / f"{p.stem}.txt", frame_index_of(p.stem, i)) for i, p in enumerate(files)]


def load_scene(scene_dir: str | Path) -> Scene:
    root = Path(scene_dir)
    if not root.is_dir():
        raise CctvkitError("scene folder not found", root, FIX)
    plate = _read_image(_need(root, SceneOut.plate.name), cv2.IMREAD_COLOR)
    walk_path = _need(root, SceneOut.walkable.name)
    walkable = _read_image(walk_path, cv2.IMREAD_GRAYSCALE) > 127
    if walkable.shape != plate.shape[:2]:
        raise CctvkitError(
            f"walkable mask is {walkable.shape[1]}x{walkable.shape[0]}, "
            f"plate is {plate.shape[1]}x{plate.shape[0]}",
            walk_path,
            FIX,
        )
    persp_path = _need(root, SceneOut.perspective.name)
    doc = _read_json(persp_path)
    perspective = Perspective.from_json(doc if isinstance(doc, dict) else {}, persp_path)
    plates = _load_plates(root, plate)
    probe = Scene(root, plate, walkable, perspective, [], [], [], plates)
    cutouts, skipped = _load_cutouts(root, probe.plate_for_frame)
    return Scene(root, plate, walkable, perspective, cutouts, _list_real(root), skipped, plates,
                 load_distractors(root))
