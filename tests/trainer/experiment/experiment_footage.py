"""A small labelled fixed-camera sequence for the experiment tests: tests/synthetic_video.py's walking figures,
written as frame_N.jpg + YOLO labels (the layout of ../shared/data/thermal-harbour), with empty plates.
clip=1, 2, ... is another clip of the same camera (the same scene with its own sensor noise: no frame has
the bytes of another clip's frame), like ../shared/data/caviar-lobby/walk1 and walk3."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import synthetic_video as sv

from edge.formats.yolo import save_yolo_labels


def make_footage(root: Path, n: int = 100, negatives: int = 20, clip: int = 0) -> tuple[Path, Path]:
    """root/footage/{images,labels} (n frames, 3 walkers crossing the scene over the sequence) and
    root/plates (empty backgrounds with a little noise); root/footage-<clip> and root/plates-<clip> for a
    clip other than 0."""
    tag = f"-{clip}" if clip else ""
    data, plates = root / f"footage{tag}", root / f"plates{tag}"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    plates.mkdir()
    bg = sv.background()
    noise = np.random.default_rng(100 + clip)
    for i in range(n):
        t = i * (sv.N_FRAMES - 1) / (n - 1)  # the walkers' whole path, whatever n is
        img = sv.frame_at(t, bg)
        if clip:
            img = np.clip(img.astype(np.int16) + noise.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(data / "images" / f"frame_{i + 1}.jpg"), img)
        boxes = sv.true_boxes(t)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, sv.W)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, sv.H)
        save_yolo_labels(data / "labels" / f"frame_{i + 1}.txt", np.zeros(len(boxes), np.int64), boxes,
                         sv.W, sv.H)
    rng = np.random.default_rng(1 + clip)
    for j in range(negatives):
        noisy = np.clip(bg.astype(np.int16) + rng.integers(-3, 4, bg.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(plates / f"plate_{j}.png"), noisy)
    return data, plates
