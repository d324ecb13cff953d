"""A persons stage folder (edge/stages.py PersonsOut, persons.json version 1) made from a toy scene's own
cutouts, recoloured: what the generator would hand compose, without a generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge.stages import PersonsOut


def make_persons(scene_dir: Path, root: Path, empty_alpha: bool = False) -> Path:
    """One generated person per scene cutout (same frame and foot, channels reversed, so the two sources
    are told apart by colour); empty_alpha writes fully transparent ones (a broken generator)."""
    (root / PersonsOut.cutouts.name).mkdir(parents=True)
    records = []
    for n, rec in enumerate(json.loads((scene_dir / "cutouts.json").read_text())):
        rgba = cv2.imread(str(scene_dir / rec["file"]), cv2.IMREAD_UNCHANGED)
        out = np.concatenate([rgba[:, :, 2::-1], rgba[:, :, 3:]], axis=2)
        if empty_alpha:
            out[:, :, 3] = 0
        file = f"{PersonsOut.cutouts.name}/{n + 1:05d}.png"
        cv2.imwrite(str(root / file), out)
        h, w = out.shape[:2]
        records.append({"file": file, "frame": rec["frame"], "silhouette": rec["file"], "flipped": False,
                        "foot": [w / 2, float(h)], "height_px": float(h), "gate_conf": 0.8})
    doc = {"version": 1, "cutouts": records, "rejected": [],
           "gate": {"by": "hog", "model": None, "conf": 0.3, "sampled": len(records), "kept": len(records),
                    "rejected_share": 0.0},
           "generator": {"checkpoint": "last.pt", "sha256": "", "size": [64, 128], "sampler": "ddim", "steps": 2}}
    (root / PersonsOut.persons_json.name).write_text(json.dumps(doc))
    cv2.imwrite(str(root / PersonsOut.contact_sheet.name), np.zeros((8, 8, 3), np.uint8))
    return root
