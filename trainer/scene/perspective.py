"""Perspective of a fixed camera over flat ground: a person's pixel height is linear in the image row of
their feet (exact for a pinhole camera without roll looking at a plane; close enough for CCTV lenses).

Fitted robustly because the observations are automatic: merged pairs, half-occluded people and shadow
blobs are outliers, not noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import CctvkitError

MIN_OBSERVATIONS = 8


@dataclass(frozen=True)
class Perspective:
    a: float  # pixels of height per pixel of foot row
    b: float  # height at row 0
    n_points: int = 0
    inliers: int = 0
    median_abs_residual_px: float = 0.0
    row_range: tuple[float, float] = (0.0, 0.0)

    def height_at(self, row: float | np.ndarray) -> float | np.ndarray:
        """Expected person height (px) for feet at `row`; never below 1 px (rows above the horizon)."""
        h = np.maximum(self.a * np.asarray(row, np.float64) + self.b, 1.0)
        return float(h) if np.ndim(h) == 0 else h

    def to_json(self) -> dict:
        return {
            "model": "linear",
            "a": float(self.a),
            "b": float(self.b),
            "n_points": int(self.n_points),
            "inliers": int(self.inliers),
            "median_abs_residual_px": float(self.median_abs_residual_px),
            "row_range": [float(self.row_range[0]), float(self.row_range[1])],
        }

    @classmethod
    def from_json(cls, doc: dict, source: str | Path = "perspective.json") -> Perspective:
        try:
            if doc.get("model") != "linear":
                raise ValueError(f"model {doc.get('model')!r} is not 'linear'")
            lo, hi = doc.get("row_range", (0.0, 0.0))
            return cls(float(doc["a"]), float(doc["b"]), int(doc.get("n_points", 0)), int(doc.get("inliers", 0)),
                       float(doc.get("median_abs_residual_px", 0.0)), (float(lo), float(hi)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CctvkitError(f"not a perspective model ({e})", source, "re-run the scene stage") from None


def _lstsq(rows: np.ndarray, heights: np.ndarray) -> tuple[float, float]:
    A = np.stack([rows, np.ones_like(rows)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, heights, rcond=None)
    return float(a), float(b)


def fit_perspective(
    foot_rows: np.ndarray,
    heights: np.ndarray,
    video: str | Path = "<video>",
    rel_tol: float = 0.12,
    min_tol_px: float = 3.0,
    iterations: int = 400,
    seed: int = 0,
) -> tuple[Perspective, np.ndarray]:
    """RANSAC over point pairs, then least squares on the inliers (twice, so the inlier set settles).

    The inlier tolerance is relative (rel_tol of the predicted height): a 10 px error is noise for
    a 150 px person and a different person class for a 30 px one. Returns the model and the inlier mask.
    """
    rows = np.asarray(foot_rows, np.float64).reshape(-1)
    hs = np.asarray(heights, np.float64).reshape(-1)
    n = len(rows)
    if n < MIN_OBSERVATIONS:
        raise CctvkitError(
            f"no people found ({n} person observations, need {MIN_OBSERVATIONS})",
            video,
            "pass a video with people walking",
        )

    def inliers_of(a: float, b: float) -> np.ndarray:
        pred = np.maximum(a * rows + b, 1.0)
        return np.abs(hs - pred) <= np.maximum(rel_tol * pred, min_tol_px)

    rng = np.random.default_rng(seed)  # fixed seed: the same video gives the same scene, always
    best = inliers_of(0.0, float(np.median(hs)))  # the flat model is the baseline to beat
    best_count = int(best.sum())
    span = np.ptp(rows)
    if span > 1e-6:
        for _ in range(iterations):
            i, j = rng.choice(n, 2, replace=False)
            if abs(rows[i] - rows[j]) < 0.1 * span:
                continue  # near-equal rows give a wild slope
            a = (hs[i] - hs[j]) / (rows[i] - rows[j])
            b = hs[i] - a * rows[i]
            m = inliers_of(a, b)
            if int(m.sum()) > best_count:
                best, best_count = m, int(m.sum())
    mask = best
    a, b = 0.0, float(np.median(hs[mask])) if mask.any() else float(np.median(hs))
    for _ in range(3):
        if mask.sum() >= 2 and np.ptp(rows[mask]) > 1e-6:
            a, b = _lstsq(rows[mask], hs[mask])
        new = inliers_of(a, b)
        if new.sum() < 2 or np.array_equal(new, mask):
            break
        mask = new
    resid = np.abs(hs[mask] - (a * rows[mask] + b))
    model = Perspective(
        a=a,
        b=b,
        n_points=n,
        inliers=int(mask.sum()),
        median_abs_residual_px=float(np.median(resid)) if len(resid) else 0.0,
        row_range=(float(rows[mask].min()), float(rows[mask].max())) if mask.any() else (0.0, 0.0),
    )
    return model, mask
