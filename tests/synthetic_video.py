"""A small synthetic CCTV video with known ground truth, for the scene tests.

Static textured background; person-like figures (dark body ellipse, legs, head) walking along known
paths, their height set by a known perspective: height = A * foot_row + B.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H = 320, 240
A, B = 0.4, -10.0
N_FRAMES = 60
FPS = 10.0


def height_at(row: float) -> float:
    return A * row + B


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (H // 4, W // 4, 3)).astype(np.float32)
    tex = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC) * 18
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    base = (1 - y) * np.array([150, 170, 180], np.float32) + y * np.array([120, 160, 130], np.float32)
    img = np.clip(base + tex, 0, 255).astype(np.uint8)
    for x in range(0, W, 32):  # paving joints: edges that must not show up as motion
        cv2.line(img, (x, 60), (x + 40, H - 1), (95, 110, 105), 1)
    cv2.rectangle(img, (10, 10), (90, 50), (60, 80, 160), -1)  # a "building"
    return img


@dataclass(frozen=True)
class Walker:
    start: tuple[float, float]  # foot (x, y) at frame 0
    end: tuple[float, float]  # foot (x, y) at the last frame
    colour: tuple[int, int, int]

    def foot(self, t: int) -> tuple[float, float]:
        f = t / (N_FRAMES - 1)
        return (self.start[0] + f * (self.end[0] - self.start[0]), self.start[1] + f * (self.end[1] - self.start[1]))


WALKERS = (
    Walker((40.0, 110.0), (150.0, 205.0), (40, 30, 30)),  # diagonal: towards the camera, growing
    Walker((290.0, 140.0), (205.0, 150.0), (30, 30, 90)),
    Walker((70.0, 226.0), (290.0, 222.0), (60, 40, 20)),
)


def figure_box(foot: tuple[float, float]) -> tuple[int, int, int, int]:
    h = int(round(height_at(foot[1])))
    w = int(round(0.38 * h))
    x1 = int(round(foot[0] - w / 2))
    y2 = int(round(foot[1]))
    return x1, y2 - h, x1 + w, y2


def draw_figure(img: np.ndarray, foot: tuple[float, float], colour: tuple[int, int, int], t: int) -> None:
    x1, y1, x2, y2 = figure_box(foot)
    h, w = y2 - y1, x2 - x1
    cx = (x1 + x2) / 2
    r = max(2, int(round(0.11 * h)))
    cv2.circle(img, (int(round(cx)), y1 + r), r, (90, 110, 170), -1)  # head (skin-ish)
    cv2.ellipse(img, (int(round(cx)), int(round(y1 + 0.42 * h))), (max(2, int(0.5 * w) - 1), int(0.2 * h)),
                0, 0, 360, colour, -1)  # torso
    swing = int(round(0.18 * w * np.sin(t * 0.8)))  # legs scissor as it walks
    lw = max(2, w // 5)
    top = int(round(y1 + 0.55 * h))
    cv2.line(img, (int(cx) - lw // 2, top), (int(cx) - lw // 2 - swing, y2 - 1), colour, lw)
    cv2.line(img, (int(cx) + lw // 2, top), (int(cx) + lw // 2 + swing, y2 - 1), colour, lw)


def frame_at(t: int, bg: np.ndarray, walkers: tuple[Walker, ...] = WALKERS) -> np.ndarray:
    img = bg.copy()
    for w in sorted(walkers, key=lambda w: w.foot(t)[1]):  # nearer (lower) figures drawn last
        draw_figure(img, w.foot(t), w.colour, t)
    return img


def true_boxes(t: int, walkers: tuple[Walker, ...] = WALKERS) -> np.ndarray:
    return np.array([figure_box(w.foot(t)) for w in walkers], np.float32)


def write_video(path: Path, walkers: tuple[Walker, ...] = WALKERS, n_frames: int = N_FRAMES) -> Path:
    bg = background()
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert vw.isOpened(), "OpenCV cannot write MJPG .avi here"
    for t in range(n_frames):
        vw.write(frame_at(t, bg, walkers))
    vw.release()
    return path


def tiny_demo_config(formats: tuple[str, ...] = ("onnx",)) -> str:
    """A `trainer demo --config` YAML that runs every stage on this video in a minute or two."""
    return f"""
scene: {{plate_frames: 30, calib_frames: 40, scan_stride: 1, holdout_frames: 12}}
compose: {{n_images: 48, cls_size: 64}}
train: {{detector_epochs: 1, detector_imgsz: 96, classifier_epochs: 1, classifier_imgsz: 32, batch: 8, workers: 0}}
export: {{calibration_images: 32, formats: [{", ".join(formats)}]}}
eval: {{max_frames: 12}}
"""
