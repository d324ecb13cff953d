"""Hard negatives from the scene: motion that is not a person (a boat, a car, a light sweeping a wall).

The person finder turns down foreground blobs far bigger than the perspective's people, or wider than two
people where HOG sees nobody (trainer/scene/people.py, PersonFinder.rejected). Those are what a person
detector later mistakes for people on this camera (Frigate users' most reported false positives are
exactly such scene objects). Each is cut out of its frame with its foreground mask (scene/distractors/,
RGBA, like the person cutouts) and compose pastes them back at their own place in the scene, under the
composed persons and on empty plates, with no label: the detector learns that this motion is not a person.

A blob that touches a person the finder did find is not kept (it may be that person with a shadow), and
at most `max_distractors`, spread over time, so one parked-then-leaving car does not fill the set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.sampling import spread
from edge.stages import SceneOut
from trainer.scene.blobs import inside

MIN_SIDE = 8  # px: smaller blobs are noise, not an object a detector could mistake


@dataclass
class Distractor:
    frame: int
    box: tuple[int, int, int, int]
    why: str
    rgba: np.ndarray


class DistractorBank:
    def __init__(self, limit: int):
        self.limit = limit
        self.found: list[Distractor] = []
        self.turned_down = 0

    def see(self, index: int, frame: np.ndarray, rejected: list[tuple[np.ndarray, str, np.ndarray]],
            people: np.ndarray) -> None:
        """One scan frame: the finder's rejected blobs, and the person boxes it found in the same frame."""
        if self.limit <= 0:
            return
        for box, why, mask in rejected:
            x1, y1, x2, y2 = (int(v) for v in box)
            if min(x2 - x1, y2 - y1) < MIN_SIDE or any(inside(p, box) > 0.1 or inside(box, p) > 0.1 for p in people):
                self.turned_down += 1
                continue
            # Alpha: the blob's own foreground, grown a little so its outline is not cut too tight.
            alpha = cv2.dilate(mask.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
            self.found.append(Distractor(index, (x1, y1, x2, y2), why, np.dstack([frame[y1:y2, x1:x2], alpha])))

    def save(self, out_dir: Path) -> dict[str, Any]:
        """distractors/NNNNN.png + distractors.json (always written, maybe empty); the scene.json summary."""
        chosen = spread(sorted(self.found, key=lambda d: (d.frame, d.box)), self.limit)
        folder = out_dir / SceneOut.distractors.name
        folder.mkdir(parents=True, exist_ok=True)
        records = []
        for n, d in enumerate(chosen, 1):
            name = f"{SceneOut.distractors.name}/{n:05d}.png"
            if not cv2.imwrite(str(out_dir / name), d.rgba):
                raise OSError(f"cannot write {out_dir / name}")
            records.append({"file": name, "frame": d.frame, "box": list(d.box), "why": d.why})
        (out_dir / SceneOut.distractors_json.name).write_text(json.dumps(records, indent=1) + "\n")
        whys: dict[str, int] = {}
        for d in self.found:
            whys[d.why] = whys.get(d.why, 0) + 1
        return {"kept": len(records), "found": len(self.found), "touching_a_person": self.turned_down,
                "why": whys, "what": "motion the finder judged not a person; pasted by compose as hard negatives"}


def load_distractors(scene_dir: Path) -> list[dict[str, Any]]:
    """The records of distractors.json with their RGBA images ("rgba"); [] for scenes without one."""
    path = scene_dir / SceneOut.distractors_json.name
    if not path.is_file():
        return []
    out = []
    for rec in json.loads(path.read_text()):
        rgba = cv2.imread(str(scene_dir / rec["file"]), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise CctvkitError("distractor image is missing or not RGBA", scene_dir / rec["file"],
                               "re-run `trainer scene`")
        out.append({**rec, "rgba": rgba})
    return out


def paste(img: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    """The distractor at its own place in the scene (alpha-blended; clipped to the image)."""
    x1, y1, x2, y2 = d["box"]
    h, w = img.shape[:2]
    if x1 >= w or y1 >= h:
        return img
    x2, y2 = min(x2, w), min(y2, h)
    rgba = d["rgba"][: y2 - y1, : x2 - x1]
    a = cv2.GaussianBlur(rgba[:, :, 3], (3, 3), 0).astype(np.float32)[:, :, None] / 255.0
    out = img.copy()
    region = out[y1:y2, x1:x2].astype(np.float32)
    out[y1:y2, x1:x2] = (a * rgba[:, :, :3] + (1 - a) * region).round().astype(np.uint8)
    return out
