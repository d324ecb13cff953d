"""A small synthetic scene folder in the scene stage's exact format, for the compose tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

W, H = 320, 240
A, B = 0.6, -30.0  # perspective: height = A * foot_row + B
ROW_RANGE = (95.0, 230.0)
BASE = {"n_images": 30, "seed": 3, "cls_size": 64}  # the compose parameters of the shared fixture run
COLOURS = [(40, 40, 220), (220, 60, 40), (40, 200, 40), (200, 40, 200), (30, 200, 220), (230, 230, 30)]


def height_at(row: float) -> float:
    return A * row + B


def make_plate(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    sky = np.array([200, 170, 140], np.float32)
    ground = np.array([110, 120, 125], np.float32)
    plate = np.where(y < 0.35, sky, ground) * np.ones((H, W, 3), np.float32)
    plate += rng.normal(0, 6, (H, W, 3)).astype(np.float32)
    plate = cv2.GaussianBlur(plate, (0, 0), 1.0)
    plate[150:200, 200:300] *= 0.6  # a shaded patch of ground
    for x in range(0, W, 40):  # paving lines converging upwards
        cv2.line(plate, (x, H - 1), (W // 2 + (x - W // 2) // 3, 90), (90, 95, 100), 1)
    return np.clip(plate, 0, 255).astype(np.uint8)


def make_walkable() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [np.array([[40, 90], [280, 90], [319, 239], [0, 239]], np.int32)], 255)
    return m


def draw_figure(height: int, colour: tuple[int, int, int]) -> np.ndarray:
    """RGBA figure: head, torso, two legs, alpha 0/255, feet at the bottom centre, RGB 0 where transparent."""
    w = max(6, int(round(height * 0.42)))
    rgba = np.zeros((height, w, 4), np.uint8)
    a = np.zeros((height, w), np.uint8)
    r = max(2, height // 10)
    cv2.circle(a, (w // 2, r + 1), r, 255, -1)
    cv2.ellipse(a, (w // 2, int(height * 0.42)), (max(2, w // 2 - 1), int(height * 0.2)), 0, 0, 360, 255, -1)
    lw = max(1, w // 6)
    cv2.rectangle(a, (w // 2 - 2 * lw, int(height * 0.55)), (w // 2 - lw // 2, height - 1), 255, -1)
    cv2.rectangle(a, (w // 2 + lw // 2, int(height * 0.55)), (w // 2 + 2 * lw, height - 1), 255, -1)
    for c in range(3):
        rgba[:, :, c] = np.where(a > 0, colour[c], 0)
    rgba[:, :, 3] = a
    return rgba


def make_scene(
    root: Path,
    n_cutouts: int = 12,
    n_real: int = 10,
    seed: int = 0,
    colours: list[tuple[int, int, int]] = COLOURS,
) -> Path:
    rng = np.random.default_rng(seed)
    (root / "cutouts").mkdir(parents=True)
    plate = make_plate(seed)
    cv2.imwrite(str(root / "plate.png"), plate)
    cv2.imwrite(str(root / "walkable.png"), make_walkable())
    persp = {
        "model": "linear",
        "a": A,
        "b": B,
        "n_points": 40,
        "inliers": 36,
        "median_abs_residual_px": 2.0,
        "row_range": list(ROW_RANGE),
    }
    (root / "perspective.json").write_text(json.dumps(persp))
    records = []
    for i in range(n_cutouts):
        row = float(rng.uniform(*ROW_RANGE))
        h = int(round(height_at(row)))
        fig = draw_figure(h, colours[i % len(colours)])
        x = float(rng.uniform(60, 260))
        x1, y1 = int(round(x - fig.shape[1] / 2)), int(round(row - h))
        file = f"cutouts/{i + 1:05d}.png"
        cv2.imwrite(str(root / file), fig)
        records.append(
            {
                "file": file,
                "frame": 10 * i,
                "box": [x1, y1, x1 + fig.shape[1], y1 + h],
                "foot": [x1 + fig.shape[1] / 2, y1 + h],
                "height_px": h,
                "score": 0.9,
            }
        )
    (root / "cutouts.json").write_text(json.dumps(records))
    (root / "frames" / "images").mkdir(parents=True)
    (root / "frames" / "labels").mkdir(parents=True)
    for k in range(n_real):
        frame = int(k * 10 * n_cutouts / max(n_real, 1)) + 3
        img = plate.copy()
        h = 60
        fig = draw_figure(h, colours[k % len(colours)])
        x1, y1 = 100 + 10 * k, 200 - h
        m = fig[:, :, 3] > 0
        img[y1 : y1 + h, x1 : x1 + fig.shape[1]][m] = fig[:, :, :3][m]
        cv2.imwrite(str(root / "frames" / "images" / f"{frame:06d}.jpg"), img)
        cx, cy = (x1 + fig.shape[1] / 2) / W, (y1 + h / 2) / H
        (root / "frames" / "labels" / f"{frame:06d}.txt").write_text(
            f"0 {cx:.6f} {cy:.6f} {fig.shape[1] / W:.6f} {h / H:.6f}\n"
        )
    # Held-out frames: compose must never read them (their names are checked in compose.json).
    (root / "holdout" / "images").mkdir(parents=True)
    (root / "holdout" / "labels").mkdir(parents=True)
    cv2.imwrite(str(root / "holdout" / "images" / "holdout_999999.jpg"), plate)
    (root / "holdout" / "labels" / "holdout_999999.txt").write_text("0 0.5 0.5 0.1 0.3\n")
    return root
