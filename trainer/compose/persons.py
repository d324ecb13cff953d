"""Read the persons stage's folder (edge/stages.py PersonsOut, persons.json version 1) into Cutouts of
source "generated": compose then scales, flips, harmonises, shadows and occludes them on exactly the code
path of the scene's own cutouts.

A generated person never stood on the plate, so its Cutout has no source box (harmonize matches its own
colour statistics to where it is pasted) and its transparent pixels keep the generator's own background.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.stages import PersonsOut
from trainer.compose.scene import MIN_CUTOUT_PX, Cutout

FIX = "re-run `trainer persons sample --run RUN` to write the persons folder"
VERSION = 1


def _usable(path: Path) -> np.ndarray | None:
    """The RGBA crop, or None when it cannot be read, is not RGBA or shows (almost) no person."""
    rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.shape[0] < MIN_CUTOUT_PX:
        return None
    if int((rgba[:, :, 3] > 127).sum()) < MIN_CUTOUT_PX * 2:
        return None
    return rgba


def load_generated(persons_dir: str | Path) -> tuple[list[Cutout], list[str]]:
    """(usable generated cutouts, files skipped as unreadable or empty). No usable cutout is an error:
    the user asked for generated persons and would otherwise get a data set without them."""
    root = Path(persons_dir)
    meta = root / PersonsOut.persons_json.name
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise CctvkitError(f"cannot read persons.json ({e})", meta, FIX) from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("cutouts"), list):
        raise CctvkitError(f"persons.json is not version {VERSION} with a list of cutouts", meta, FIX)
    cutouts: list[Cutout] = []
    skipped: list[str] = []
    for n, rec in enumerate(doc["cutouts"]):
        try:
            file = str(rec["file"])
            frame = int(rec["frame"])
            fx, fy = (float(v) for v in rec["foot"])
            height = float(rec["height_px"])
        except (KeyError, TypeError, ValueError) as e:
            raise CctvkitError(f"cutout record {n} is malformed ({e!r})", meta, FIX) from None
        rgba = _usable(root / file)
        if rgba is None:
            skipped.append(file)
            continue
        h, w = rgba.shape[:2]
        foot = (min(max(fx, 0.0), float(w)), min(max(fy, 0.0), float(h)))
        cutouts.append(Cutout(file, frame, rgba, foot, height if height > 0 else float(h), None, "generated"))
    if not cutouts:
        raise CctvkitError(
            f"no usable RGBA person cutout in the persons folder ({len(skipped)} unreadable, not RGBA or with "
            f"an empty alpha)",
            root / PersonsOut.cutouts.name,
            FIX,
        )
    return cutouts, skipped
