"""build_scene end to end on the synthetic video: the output contract, walkable area, cutouts, time split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_video as synth

from edge.errors import CctvkitError
from edge.formats.yolo import load_yolo_labels
from trainer.scene.params import SceneParams
from trainer.scene.run import build_scene


def _frame_indices(folder: Path) -> list[int]:
    return sorted(int(p.stem[1:]) for p in folder.glob("*.jpg"))


def test_contract_files_and_summary(synth_scene: tuple[Path, dict]):
    out, summary = synth_scene
    for name in ("plate.png", "walkable.png", "perspective.json", "cutouts.json", "scene.json", "overview.png"):
        assert (out / name).is_file(), name
    plate = cv2.imread(str(out / "plate.png"), cv2.IMREAD_UNCHANGED)
    walk = cv2.imread(str(out / "walkable.png"), cv2.IMREAD_UNCHANGED)
    assert plate.shape == (synth.H, synth.W, 3) and plate.dtype == np.uint8
    assert walk.shape == (synth.H, synth.W) and set(np.unique(walk)) <= {0, 255}
    doc = json.loads((out / "scene.json").read_text())
    assert doc == json.loads(json.dumps(summary))
    assert "pseudo" in doc["labels"]
    assert doc["video"]["frame_count"] == synth.N_FRAMES
    assert doc["n_cutouts"] == len(json.loads((out / "cutouts.json").read_text()))
    assert set(doc["timings_s"]) >= {"plate", "calibrate", "scan", "holdout", "total"}


def test_time_split_keeps_the_holdout_out_of_training(synth_scene: tuple[Path, dict]):
    out, summary = synth_scene
    first_held = summary["split"]["holdout_frames"][0]
    assert first_held == synth.N_FRAMES - round(0.2 * synth.N_FRAMES)
    train = _frame_indices(out / "frames" / "images")
    held = _frame_indices(out / "holdout" / "images")
    assert train and held and max(train) < first_held <= min(held)
    assert summary["n_holdout"] == len(held)
    records = json.loads((out / "cutouts.json").read_text())
    assert records and max(r["frame"] for r in records) < first_held


def test_pseudo_labels_match_the_known_figures(synth_scene: tuple[Path, dict]):
    out, _ = synth_scene
    for split in ("frames", "holdout"):
        images = sorted((out / split / "images").glob("*.jpg"))
        hits = total = 0
        for img in images:
            i = int(img.stem[1:])
            _, boxes = load_yolo_labels(out / split / "labels" / f"{img.stem}.txt", synth.W, synth.H)
            truth = synth.true_boxes(i)
            assert len(boxes) == len(truth), f"{split} frame {i}: {len(boxes)} boxes for {len(truth)} figures"
            for t in truth:
                iw = np.clip(np.minimum(boxes[:, 2], t[2]) - np.maximum(boxes[:, 0], t[0]), 0, None)
                ih = np.clip(np.minimum(boxes[:, 3], t[3]) - np.maximum(boxes[:, 1], t[1]), 0, None)
                union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (t[2] - t[0]) * (t[3] - t[1])
                hits += int((iw * ih / (union - iw * ih)).max() >= 0.6)
                total += 1
        assert hits >= 0.95 * total, f"{split}: {hits}/{total} figures matched"


def test_walkable_mask_covers_the_foot_tracks(synth_scene: tuple[Path, dict]):
    out, _ = synth_scene
    walk = cv2.imread(str(out / "walkable.png"), cv2.IMREAD_GRAYSCALE) > 0
    train_end = synth.N_FRAMES - round(0.2 * synth.N_FRAMES)
    feet = [w.foot(t) for w in synth.WALKERS for t in range(train_end)]
    inside = [walk[min(int(round(y)), synth.H - 1), int(round(x))] for x, y in feet]
    assert np.mean(inside) >= 0.9
    assert walk.mean() < 0.6, "walkable must not be the whole frame"
    assert not walk[:60].any(), "no walkable ground where no foot ever was (the building at the top)"


def test_cutouts_are_rgba_people_with_binary_alpha(synth_scene: tuple[Path, dict]):
    out, _ = synth_scene
    records = json.loads((out / "cutouts.json").read_text())
    assert len(records) >= 10
    for r in records[:: max(1, len(records) // 15)]:
        img = cv2.imread(str(out / r["file"]), cv2.IMREAD_UNCHANGED)
        x1, y1, x2, y2 = r["box"]
        assert img.shape == (y2 - y1, x2 - x1, 4)
        alpha = img[..., 3]
        assert set(np.unique(alpha)) == {0, 255}
        assert 0.3 <= (alpha > 0).mean() <= 0.9
        assert r["height_px"] == y2 - y1 and r["foot"] == [(x1 + x2) / 2, y2]
        # The opaque pixels are the dark figure, the transparent ones the bright background.
        grey = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY).astype(float)
        assert grey[alpha > 0].mean() + 25 < grey[alpha == 0].mean()


def test_no_people_is_an_error_naming_the_video(static_video: Path, tmp_path: Path):
    with pytest.raises(CctvkitError) as err:
        build_scene(static_video, tmp_path, SceneParams(plate_frames=10, calib_frames=20), progress=False)
    text = str(err.value)
    assert str(static_video) in text and "no people found" in text and "people walking" in text


def test_corrupt_video_is_an_error_before_anything_is_written(corrupt_video: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CctvkitError, match="cannot decode video"):
        build_scene(corrupt_video, out, SceneParams(), progress=False)
    assert list(out.iterdir()) == []


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="extra"):
        SceneParams(plate_frame=10)


def test_quiet_video_calibrates_on_more_frames(tmp_path: Path):
    """One walker, in view for a third of the video: the sparse calibration sample misses most of it,
    so calibration must widen to every scanned frame instead of failing."""
    walker = synth.Walker((-300.0, 120.0), (600.0, 230.0), (40, 30, 30))
    video = synth.write_video(tmp_path / "quiet.avi", walkers=(walker,))
    params = SceneParams(plate_frames=20, calib_frames=8, scan_stride=1)
    out = tmp_path / "out"
    out.mkdir()
    summary = build_scene(video, out, params, progress=False)
    assert summary["frames_used"]["calibrate"] > 8
    assert summary["perspective"]["a"] == pytest.approx(synth.A, abs=0.08)
