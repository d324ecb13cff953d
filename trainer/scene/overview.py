"""overview.png: the scene model at a glance, for a person to check before trusting any number.

Plate, walkable area tinted green, every foot point seen (green: fits the perspective, red: outlier),
and a perspective ruler: boxes of the expected person size standing at several rows.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.scene.perspective import Perspective

MIN_WIDTH = 768  # small frames are drawn enlarged so the ruler's labels stay readable


def draw_overview(
    plate: np.ndarray,
    walkable: np.ndarray,
    feet: np.ndarray,
    inliers: np.ndarray,
    perspective: Perspective,
    width_ratio: float,
    measure: str = "height",
) -> np.ndarray:
    h, w = plate.shape[:2]
    s = max(1.0, MIN_WIDTH / w)
    img = cv2.resize(plate, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR) if s > 1 else plate.copy()
    walk = cv2.resize(walkable, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    tint = img.copy()
    tint[walk > 0] = (0.5 * tint[walk > 0] + np.array([0, 127, 0])).astype(np.uint8)
    img = cv2.addWeighted(tint, 0.7, img, 0.3, 0)
    contours, _ = cv2.findContours(walk, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (0, 200, 0), 1)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s)), int(round(y * s))

    feet = np.asarray(feet, np.float64).reshape(-1, 2)
    inliers = np.asarray(inliers, bool).reshape(-1)
    for (x, y), ok in zip(feet, inliers, strict=True):
        cv2.circle(img, pt(x, y), 2, (0, 255, 0) if ok else (0, 0, 255), -1)

    lo, hi = perspective.row_range
    if hi <= lo:
        lo, hi = 0.3 * h, 0.95 * h
    font = cv2.FONT_HERSHEY_SIMPLEX
    for row in np.linspace(lo, hi, 4):
        ph = float(perspective.height_at(row))
        pw = width_ratio * ph
        cols = np.nonzero(walkable[int(min(max(row, 0), h - 1))] > 0)[0]
        if len(cols) == 0:
            xs = [w / 2]
        elif np.ptp(cols) > 4 * pw:  # two rulers per row where the walkable band is wide
            xs = [cols.min() + 0.15 * np.ptp(cols), cols.max() - 0.15 * np.ptp(cols)]
        else:
            xs = [float(np.median(cols))]
        for x in xs:
            p1, p2 = pt(x - pw / 2, row - ph), pt(x + pw / 2, row)
            cv2.rectangle(img, p1, p2, (0, 255, 255), 2)
            cv2.putText(img, f"{ph:.0f}px", (p1[0], max(p1[1] - 4, 12)), font, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
    sign = "+" if perspective.b >= 0 else "-"
    text = (f"{measure} = {perspective.a:.3f} * foot_row {sign} {abs(perspective.b):.1f}   ({perspective.inliers}/"
            f"{perspective.n_points} feet fit, median error {perspective.median_abs_residual_px:.1f}px)")
    bar = np.zeros((24, img.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (6, 16), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([img, bar])  # below the picture, so it hides nothing
