"""The scene model's pieces for people at any orientation ("any" mode of SceneParams.orientation): the
radial size fit on observations, and the row-based stand-in that perspective.json carries for compose.

Compose reads perspective.json as a linear model of size against the foot row (trainer/compose/scene.py,
placement.py) and scales a cutout by target / its cutouts.json height_px. In "any" mode both are in the
size model's measure (a person's length, the long side of its blob), so the scaling stays consistent;
the radial model itself, the better description of a camera looking down, travels in the same file
under "size_model" for anything that wants it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.scene.people import PersonObservation
from trainer.scene.perspective import Perspective, fit_perspective
from trainer.scene.sizemodel import MEASURE, REL_TOL, RadialSize, fit_radial_size


def size_of(p: PersonObservation) -> float:
    """The size measure of the mode the observation came from: length ("any") or box height (upright)."""
    return float(p.extra.get("size", p.height))


def fit_any(people: list[PersonObservation], video: str | Path, centre: tuple[float, float]
            ) -> tuple[RadialSize, np.ndarray, list[PersonObservation]]:
    """Radial size model from whole people only: a person cut by the frame border is too short."""
    usable = [p for p in people if not p.touches_border]
    pts = np.array([p.extra["centre"] for p in usable], np.float64).reshape(-1, 2)
    model, inliers = fit_radial_size(pts, np.array([size_of(p) for p in usable]), centre, video)
    return model, inliers, usable


def row_model(usable: list[PersonObservation], inliers: np.ndarray, video: str | Path) -> Perspective:
    """Length against the foot row over the size model's inliers: what compose places people with. Often
    flat for a camera looking down (a constant typical length), which is the honest row-only answer."""
    chosen = [p for p, ok in zip(usable, inliers, strict=True) if ok]
    return fit_perspective(np.array([p.foot[1] for p in chosen]), np.array([size_of(p) for p in chosen]),
                           video, rel_tol=REL_TOL)[0]


def width_ratio_any(usable: list[PersonObservation], inliers: np.ndarray) -> float:
    """Box width / length: how wide the ground a person covers is, for the walkable mask and overview."""
    chosen = [p for p, ok in zip(usable, inliers, strict=True) if ok] or usable
    if not chosen:
        return 0.8
    return float(np.clip(np.median([p.width / size_of(p) for p in chosen]), 0.25, 1.0))


def any_perspective_json(row: Perspective, size: RadialSize) -> dict:
    return {**row.to_json(), "measure": MEASURE, "size_model": size.to_json()}
