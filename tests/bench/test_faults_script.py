"""benchmarks/faults.py refuses what it cannot run with exit status 2 and one reason, before any daemon starts.
(The scenarios themselves are a benchmark of minutes, not a test: see the script's docstring.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "faults.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def tiny_video(path: Path) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(5):
        out.write(np.full((48, 64, 3), 40 * i, np.uint8))
    out.release()
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "crash"], "invalid choice: 'crash'"),
        (["--kills", "0"], "--kills must be > 0"),
        (["--minutes", "-1", "--hold-s", "0"], "--minutes, --hold-s must be > 0"),
        (["--model-file", "x.onnx", "--run", "runs/x"], "give either --run/--model or --model-file"),
    ],
)
def test_bad_arguments_exit_2(args, message):
    r = run_script(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_unusable_model_or_video_exit_2_naming_it(tmp_path):
    r = run_script("--video", str(tmp_path / "none.avi"), "--model-file", str(tmp_path / "none.onnx"))
    assert r.returncode == 2 and "cannot decode the video" in r.stderr and "none.avi" in r.stderr
    video = tiny_video(tmp_path / "v.avi")
    r = run_script("--video", str(video), "--model-file", str(tmp_path / "none.onnx"))
    assert r.returncode == 2 and "model file not found" in r.stderr and "none.onnx" in r.stderr
    r = run_script("--video", str(video), "--run", str(tmp_path / "norun"), "--scenario", "kill9")
    assert r.returncode == 2 and "norun" in r.stderr
    assert "scenario" not in r.stdout  # refused before any scenario began
