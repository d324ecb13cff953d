"""Bad input to `trainer`: one line naming the file and the fix, exit code 2, no run directory left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def trainer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CCTVKIT_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def no_run_left(runs: Path) -> bool:
    return not runs.exists() or not any(p for p in runs.iterdir() if not p.name.startswith(".cctvkit"))


def test_missing_video(tmp_path):
    proc = trainer("demo", "--video", str(tmp_path / "nope.avi"), "--runs-dir", str(tmp_path / "runs"),
                   cwd=tmp_path)
    assert_one_line_error(proc, "nope.avi", "--video")
    assert no_run_left(tmp_path / "runs")


def test_corrupt_video(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    proc = trainer("demo", "--video", str(bad), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert_one_line_error(proc, "bad.avi")
    assert no_run_left(tmp_path / "runs")


def test_video_without_people(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(1)
    background = rng.integers(60, 200, (240, 320, 3), dtype=np.uint8)
    for _ in range(40):
        noise = rng.integers(-3, 4, background.shape)
        writer.write(np.clip(background.astype(int) + noise, 0, 255).astype(np.uint8))
    writer.release()
    proc = trainer("demo", "--video", str(path), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert_one_line_error(proc, "empty.avi")
    assert no_run_left(tmp_path / "runs")


def test_runs_dir_that_is_a_file(tmp_path):
    # Also works as root: a path below a regular file can never be created.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = trainer("demo", "--video", "x.avi", "--runs-dir", str(blocker / "runs"), cwd=tmp_path)
    assert_one_line_error(proc, "runs", "--runs-dir")


def test_manifest_from_another_version(tmp_path):
    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"schema": "cctvkit.manifest", "version": 0, "stages": {}}))
    proc = trainer("compose", "--run", str(run), cwd=tmp_path)
    assert_one_line_error(proc, "manifest.json", "version 0")


def test_unknown_config_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epoch: 3\n")
    proc = trainer("demo", "--config", str(cfg), "--video", "x.avi", "--runs-dir", str(tmp_path / "r"),
                   cwd=tmp_path)
    assert_one_line_error(proc, "c.yaml", "'train.epoch'", "detector_epochs")


# --- issue 14 row 6: an unusable --run -------------------------------------------------------------------------
SCENE_CFG = "scene: {plate_frames: 30, calib_frames: 40, scan_stride: 1, holdout_frames: 12}\n"


def _walkers(tmp_path: Path) -> Path:
    import synthetic_video

    return synthetic_video.write_video(tmp_path / "walkers.avi")


def _empty_run(run: Path) -> Path:
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"schema": "cctvkit.manifest", "version": 1, "run": run.name,
                                                   "complete": False, "stages": {}, "models": {}}))
    return run


def test_read_only_run_directory(tmp_path):
    from readonly_dir import read_only

    video, run = _walkers(tmp_path), _empty_run(tmp_path / "runs" / "ro")
    before = (run / "manifest.json").read_bytes()
    with read_only(run):
        proc = trainer("scene", "--run", str(run), "--video", str(video), "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, str(run), "not writable", "--run")
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]
    assert (run / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("stage", ["scene", "compose"])
def test_run_that_names_a_file(tmp_path, stage):
    video = _walkers(tmp_path)
    proc = trainer(stage, "--run", str(video), *(["--video", str(video)] if stage == "scene" else []),
                   cwd=tmp_path)
    assert_one_line_error(proc, "walkers.avi", "--run names a file", "run's folder")


@pytest.mark.parametrize(("where", "value", "key"), [
    ([], "oops", "'stages'"),
    (["scene"], ["a list"], "'stages.scene'"),
    (["scene", "outputs", "plate.png"], {"sha256": "0" * 64}, "'stages.scene.outputs.plate.png.path'"),
])
def test_manifest_of_the_wrong_shape(tmp_path, where, value, key):
    run = _empty_run(tmp_path / "runs" / "bad")
    doc = json.loads((run / "manifest.json").read_text())
    doc["stages"] = {"scene": {"outputs": {"plate.png": {"path": "scene/plate.png", "sha256": "0" * 64}}}}
    node = doc["stages"]
    for k in where[:-1]:
        node = node[k]
    if where:
        node[where[-1]] = value
    else:
        doc["stages"] = value
    (run / "manifest.json").write_text(json.dumps(doc))
    proc = trainer("compose", "--run", str(run), cwd=tmp_path)
    assert_one_line_error(proc, "manifest.json", f"manifest key {key}")


# --- issue 14 row 8: a first stage that fails leaves no run ----------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n"], ids=["zero-byte", "text"])
def test_scene_on_an_unreadable_video_leaves_no_run(tmp_path, content):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    runs = tmp_path / "runs"
    proc = trainer("scene", "--run", str(runs / "new"), "--video", str(bad), cwd=tmp_path)
    assert_one_line_error(proc, "bad.avi")
    assert no_run_left(runs)
    mine = runs / "mine"  # a folder that was there before: kept, and nothing written into it
    mine.mkdir()
    proc = trainer("scene", "--run", str(mine), "--video", str(bad), cwd=tmp_path)
    assert_one_line_error(proc, "bad.avi")
    assert mine.is_dir() and list(mine.iterdir()) == []


# --- issue 14 row 9: motion, but nobody to cut out -------------------------------------------------------------
def test_scene_with_motion_but_no_person_is_refused(tmp_path):
    import synthetic_video as sv

    video = tmp_path / "vans.avi"  # two wide boxes driving across: movement the finder sees, no person
    bg = sv.background()
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), sv.FPS, (sv.W, sv.H))
    for t in range(sv.N_FRAMES):
        img = bg.copy()
        for k, (y, colour) in enumerate(((130, (40, 30, 30)), (200, (30, 30, 90)))):
            x = 10 + (t * 4 + 120 * k) % 250
            cv2.rectangle(img, (x, y - 18), (x + 60, y), colour, -1)
        vw.write(img)
    vw.release()
    cfg = tmp_path / "scene.yaml"
    cfg.write_text(SCENE_CFG)
    runs = tmp_path / "runs"
    proc = trainer("scene", "--run", str(runs / "vans"), "--video", str(video), "--config", str(cfg),
                   "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "vans.avi", "0 usable person cutouts", "trainer import")
    assert no_run_left(runs)
