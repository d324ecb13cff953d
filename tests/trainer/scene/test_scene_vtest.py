"""The scene stage on a real CCTV video (PETS 2009 campus, ../shared/data/vtest/vtest.avi), subsampled."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.formats.yolo import load_yolo_labels
from trainer.scene.params import SceneParams
from trainer.scene.run import build_scene

pytestmark = pytest.mark.real

# A quick pass: fewer frames everywhere than the defaults, the same code path.
QUICK = {"plate_frames": 40, "calib_frames": 50, "scan_stride": 8, "train_frames": 40, "holdout_frames": 30,
         "max_cutouts": 100}


def test_vtest_scene_has_sensible_numbers(vtest_video: Path, tmp_path: Path):
    summary = build_scene(vtest_video, tmp_path, SceneParams(**QUICK), progress=False)
    persp = summary["perspective"]
    # People nearer the camera (lower in the image) are taller: ~55 px at row 170, ~110 px at row 400.
    assert 0.15 < persp["a"] < 0.35
    assert 45 < persp["a"] * 170 + persp["b"] < 70 and 90 < persp["a"] * 400 + persp["b"] < 130
    assert persp["inliers"] >= 0.7 * persp["n_points"] and persp["median_abs_residual_px"] < 6
    assert summary["n_cutouts"] >= 30
    assert summary["detections_by_source"].get("hog+fg", 0) > summary["detections_by_source"].get("fg", 0)
    ev = {c["name"]: c for c in summary["evidence"]["checks"]}
    assert summary["evidence"]["verdict"] == "ok"  # an ordinary plaza is not flagged
    assert 0.8 < ev["perspective"]["value"] < 1.4 and ev["plate_ghosts"]["value"] == 0

    first_held = summary["split"]["holdout_frames"][0]
    counts = []
    for img in sorted((tmp_path / "holdout" / "images").glob("*.jpg")):
        assert int(img.stem[1:]) >= first_held
        _, boxes = load_yolo_labels(tmp_path / "holdout" / "labels" / f"{img.stem}.txt", 768, 576)
        counts.append(len(boxes))
        heights = boxes[:, 3] - boxes[:, 1]
        assert np.all((heights > 20) & (heights < 200)), "boxes of person size only"
    assert len(counts) == summary["n_holdout"] >= 25
    # Several people cross the plaza throughout: most held-out frames hold 3-10 of them.
    assert np.mean(np.array(counts) >= 1) >= 0.9
    assert 3 <= np.mean(counts) <= 10

    walk = cv2.imread(str(tmp_path / "walkable.png"), cv2.IMREAD_GRAYSCALE)
    assert 0.15 < (walk > 0).mean() < 0.7
    assert not walk[:40].any(), "the building roofline is not walkable"
    records = json.loads((tmp_path / "cutouts.json").read_text())
    hs = np.array([r["height_px"] for r in records])
    assert np.all((hs > 30) & (hs < 200))
