"""RGBA cutouts of people for compositing: only single, unoccluded, cleanly segmented persons, a bounded
number spread over the training time, no near-duplicates from consecutive frames."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.sampling import spread
from edge.stages import SceneOut
from trainer.scene.people import PersonObservation
from trainer.scene.perspective import Perspective
from trainer.scene.sizemodel import RadialSize


@dataclass
class Cutout:
    frame: int
    box: tuple[int, int, int, int]
    foot: tuple[float, float]
    score: float
    rgba: np.ndarray  # (h, w, 4) uint8, alpha 0/255
    # "any" orientation: the person's length (long side of its blob), the size model's measure. Compose
    # scales a cutout by target size / height_px, so height_px must be in the same measure as the model.
    size_px: float = 0.0

    @property
    def height_px(self) -> int:
        return int(round(self.size_px)) if self.size_px > 0 else self.box[3] - self.box[1]


def _expanded(box: np.ndarray, frac: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] - frac * w, box[1] - frac * h, box[2] + frac * w, box[3] + frac * h])


def _intersects(a: np.ndarray, b: np.ndarray) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def is_clean(
    person: PersonObservation,
    others: list[PersonObservation],
    perspective: Perspective | None,
    frame_shape: tuple[int, int],
    margin: int = 3,
    min_height: float = 0.0,
) -> bool:
    """Would this person make a good cutout? Whole (not at the border, the expected height), alone (no
    other box within 10% of its size), one solid piece (fill, single component), and HOG agreed or the
    shape alone is convincing (people too small or too stylised for HOG)."""
    h_img, w_img = frame_shape
    x1, y1, x2, y2 = person.box
    if x1 < margin or y1 < margin or x2 > w_img - margin or y2 > h_img - margin:
        return False
    if person.source != "hog+fg" and person.score < 0.4:
        return False  # shape alone must then be convincing (person aspect and the expected height)
    h, w = person.height, person.width
    if h < min_height:
        return False  # too few pixels to look like anything once scaled up into a composite
    if not 1.7 <= h / max(w, 1.0) <= 4.5:
        return False
    if perspective is not None and not 0.85 <= h / perspective.height_at(y2) <= 1.2:
        return False  # shorter: a part hidden or lost; taller: something else glued on
    return _alone_and_solid(person, others, (0.35, 0.85))


def is_clean_any(
    person: PersonObservation,
    others: list[PersonObservation],
    size_model: RadialSize | None,
    frame_shape: tuple[int, int],
    margin: int = 3,
    min_size: float = 0.0,
) -> bool:
    """is_clean for people lying at any angle ("any" orientation): the same whole / alone / solid tests,
    with the length against the radial size model instead of the height against the perspective."""
    h_img, w_img = frame_shape
    x1, y1, x2, y2 = person.box
    if x1 < margin or y1 < margin or x2 > w_img - margin or y2 > h_img - margin:
        return False
    if person.score < 0.4:
        return False  # a shape far from a walker's (round, or a long streak) or an unexpected size
    size = float(person.extra.get("size", 0.0))
    if size < min_size or float(person.extra.get("fill", 0.0)) < 0.5:
        return False  # a ragged outline within its rectangle: a shadow or two people glued together
    if size_model is not None:
        cx, cy = person.extra.get("centre", ((x1 + x2) / 2, (y1 + y2) / 2))
        if not 0.85 <= size / size_model.size_at(cx, cy) <= 1.2:
            return False
    # A diagonal person fills only about a third of its axis-aligned box: a lower floor than upright.
    return _alone_and_solid(person, others, (0.2, 0.9))


def _alone_and_solid(person: PersonObservation, others: list[PersonObservation], fill_range: tuple[float, float]
                     ) -> bool:
    grown = _expanded(person.box, 0.1)
    if any(o is not person and _intersects(grown, o.box) for o in others):
        return False
    fill = float(person.mask.mean())
    if not fill_range[0] <= fill <= fill_range[1]:
        return False
    n, _, stats, _ = cv2.connectedComponentsWithStats(person.mask.astype(np.uint8), connectivity=8)
    big = int((stats[1:, cv2.CC_STAT_AREA] >= 0.03 * person.mask.sum()).sum()) if n > 1 else 0
    return big == 1


def make_cutout(frame: np.ndarray, person: PersonObservation) -> Cutout:
    x1, y1, x2, y2 = (int(v) for v in person.box)
    rgba = np.dstack([frame[y1:y2, x1:x2], np.where(person.mask, 255, 0).astype(np.uint8)])
    # Only "any"-orientation observations carry a size (their length); upright ones keep the box height.
    return Cutout(person.frame, (x1, y1, x2, y2), person.foot, person.score, rgba, float(person.extra.get("size", 0.0)))


def select_spread(cands: list[Cutout], limit: int) -> list[Cutout]:
    """At most `limit`, evenly spaced through the time-ordered candidates: consecutive candidates are
    mostly the same person a few frames apart, so spacing them out is the de-duplication."""
    return spread(sorted(cands, key=lambda c: (c.frame, c.box)), limit)


def save_cutouts(cutouts: list[Cutout], out_dir: Path) -> list[dict]:
    """Write cutouts/NNNNN.png under out_dir; return the cutouts.json records."""
    folder = out_dir / SceneOut.cutouts.name
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for n, c in enumerate(cutouts, 1):
        name = f"cutouts/{n:05d}.png"
        if not cv2.imwrite(str(out_dir / name), c.rgba):
            raise OSError(f"cannot write {out_dir / name}")
        records.append({
            "file": name,
            "frame": int(c.frame),
            "box": [int(v) for v in c.box],
            "foot": [round(float(c.foot[0]), 1), round(float(c.foot[1]), 1)],
            "height_px": int(c.height_px),
            "score": round(float(c.score), 4),
        })
    return records


# Compose keeps one cutout for training and one for validation (trainer/compose/scene.py): with fewer, every
# stage after the scene would fail, so the scene stage refuses to finish instead.
MIN_CUTOUTS = 2


@dataclass
class CutoutCollector:
    """The scan's cutout candidates, judged clean by the orientation's size model (upright: perspective
    height; "any": radial size), then spread, saved and indexed in cutouts.json."""

    perspective: Perspective | None  # upright
    size_model: RadialSize | None  # "any" orientation; None: upright
    min_size: float  # params.min_cutout_px, lowered to 3/4 of the typical person when everyone is smaller
    candidates: list[Cutout] = field(default_factory=list)
    people_seen: int = 0
    frames_seen: int = 0

    def see(self, frame: np.ndarray, people: list[PersonObservation]) -> None:
        shape = frame.shape[:2]
        self.frames_seen += 1
        self.people_seen += len(people)
        for p in people:
            ok = (is_clean(p, people, self.perspective, shape, min_height=self.min_size) if self.size_model is None
                  else is_clean_any(p, people, self.size_model, shape, min_size=self.min_size))
            if ok:
                self.candidates.append(make_cutout(frame, p))

    def save(self, out_dir: Path, limit: int, video: Path) -> list[dict]:
        """At most `limit` cutouts written under out_dir with cutouts.json; CctvkitError when fewer than
        MIN_CUTOUTS are usable (a video with motion but no whole, lone person in it)."""
        chosen = select_spread(self.candidates, limit)
        if len(chosen) < MIN_CUTOUTS:
            found = (f"the scan found {self.people_seen} person-like shapes in {self.frames_seen} frames, "
                     f"{len(self.candidates)} of them a whole person alone in view")
            fix = (f"raise scene.max_cutouts (now {limit}) to at least {MIN_CUTOUTS}" if limit < MIN_CUTOUTS else
                   "pass longer footage in which people walk through the view whole and one at a time, or train "
                   "on your own labelled frames with `trainer import`")
            raise CctvkitError(f"{len(chosen)} usable person cutouts, compose needs at least {MIN_CUTOUTS}: {found}",
                               video, fix)
        records = save_cutouts(chosen, out_dir)
        (out_dir / SceneOut.cutouts_json.name).write_text(json.dumps(records, indent=1) + "\n")
        return records
