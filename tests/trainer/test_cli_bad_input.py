"""Bad input to `trainer`: one line naming the file and the fix, exit code 2, no run directory left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

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
