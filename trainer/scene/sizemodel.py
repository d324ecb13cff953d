"""Person size for cameras where people are not upright (a fisheye or ceiling camera looking down):
the person's length in pixels (the long side of the blob's minimum-area rectangle, which does not change
as they turn) as a linear function of the distance from the image centre.

Why not the foot row: looking down, a person's apparent size depends on how far they are from the point
below the lens, not on the image row; and "feet" are not at the bottom of a box lying at any angle. With
no trend in the data the robust fit keeps the flat model (a constant median size), which is the safe
answer for a camera we know nothing about. Fitted with the same RANSAC as the perspective.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import CctvkitError
from trainer.scene.perspective import fit_perspective

MEASURE = "long_side"  # what the model predicts (and what cutouts.json height_px holds in "any" mode)
REL_TOL = 0.2  # a blob's length is noisier than an upright person's height (head and arm positions)


@dataclass(frozen=True)
class RadialSize:
    a: float  # pixels of length per pixel of distance from the centre
    b: float  # length at the centre
    centre: tuple[float, float]  # (x, y): the image centre (fisheye lenses are centred on the sensor)
    n_points: int = 0
    inliers: int = 0
    median_abs_residual_px: float = 0.0
    radius_range: tuple[float, float] = (0.0, 0.0)

    def radius(self, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
        return np.hypot(np.asarray(x, np.float64) - self.centre[0], np.asarray(y, np.float64) - self.centre[1])

    def size_at(self, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
        """Expected person length (px) at image point (x, y); clamped to the radii seen in the fit (the
        line is an extrapolation outside them) and never below 1 px."""
        r = np.clip(self.radius(x, y), *self.radius_range) if self.radius_range[1] > 0 else self.radius(x, y)
        s = np.maximum(self.a * r + self.b, 1.0)
        return float(s) if np.ndim(s) == 0 else s

    def to_json(self) -> dict:
        return {
            "model": "radial",
            "measure": MEASURE,
            "a": float(self.a),
            "b": float(self.b),
            "centre": [float(self.centre[0]), float(self.centre[1])],
            "n_points": int(self.n_points),
            "inliers": int(self.inliers),
            "median_abs_residual_px": float(self.median_abs_residual_px),
            "radius_range": [float(self.radius_range[0]), float(self.radius_range[1])],
        }

    @classmethod
    def from_json(cls, doc: dict, source: str | Path = "perspective.json") -> RadialSize:
        try:
            if doc.get("model") != "radial":
                raise ValueError(f"model {doc.get('model')!r} is not 'radial'")
            cx, cy = doc["centre"]
            lo, hi = doc.get("radius_range", (0.0, 0.0))
            return cls(float(doc["a"]), float(doc["b"]), (float(cx), float(cy)), int(doc.get("n_points", 0)),
                       int(doc.get("inliers", 0)), float(doc.get("median_abs_residual_px", 0.0)),
                       (float(lo), float(hi)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CctvkitError(f"not a radial size model ({e})", source, "re-run the scene stage") from None


def fit_radial_size(
    points: np.ndarray, sizes: np.ndarray, centre: tuple[float, float], video: str | Path = "<video>"
) -> tuple[RadialSize, np.ndarray]:
    """points (N, 2) image (x, y) of each person's centre, sizes (N,) their lengths. Returns the model and
    the inlier mask; raises the scene stage's "no people found" error below MIN_OBSERVATIONS points."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    r = np.hypot(pts[:, 0] - centre[0], pts[:, 1] - centre[1])
    line, mask = fit_perspective(r, np.asarray(sizes, np.float64).reshape(-1), video, rel_tol=REL_TOL)
    model = RadialSize(line.a, line.b, (float(centre[0]), float(centre[1])), line.n_points, line.inliers,
                       line.median_abs_residual_px, line.row_range)
    return model, mask
