"""The README's main job end to end: `trainer demo`, then the device CLIs on what it produced.

A synthetic video keeps it to a minute or two; with ../shared/data the real vtest.avi runs too (--quick).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic_video

from edge.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = synthetic_video.tiny_demo_config(("onnx", "ncnn"))


def run_cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CCTVKIT_CACHE": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=1500)
    assert proc.returncode == 0, f"{module} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


ONNX_MODELS = ["classifier-onnx-fp32", "classifier-onnx-int8", "detector-onnx-fp32", "detector-onnx-int8"]
NCNN_MODELS = [f"{tag}-ncnn-{p}" for tag in ("classifier", "detector") for p in ("fp16", "fp32", "int8")]


def check_run(run: Path, tmp_path: Path, expected_models: list[str]) -> dict:
    manifest = Manifest.load(run)
    assert manifest.data["complete"] is True
    assert list(manifest.data["stages"]) == ["scene", "compose", "train", "export", "bench"]
    models = manifest.models()
    assert sorted(models) == sorted(expected_models)
    for name in models:
        manifest.model_path(name)  # exists and matches its sha256
    assert models["classifier-onnx-fp32"].class_names[models["classifier-onnx-fp32"].person_class] == "person"
    result = json.loads((run / "bench" / "results.json").read_text())
    assert "PSEUDO" in result["data"]["description"] and result["real_labels"] is False
    assert sorted(c["model"] for c in result["cells"]) == sorted(expected_models)
    for row in result["cells"]:
        assert row["status"] == "ok", row.get("reason")
        assert row["fps_e2e"] > 0 and row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
        key = "map50" if row["task"] == "detect" else "presence_accuracy"
        assert 0.0 <= row[key] <= 1.0
    # No temp folders left beside the finished run.
    assert [p.name for p in run.parent.iterdir()] == [run.name]

    # The device side reads the same run: `bench run` and `edge detect` need nothing but the manifest.
    bench = run_cli("bench.cli", "run", "--models", str(run / "manifest.json"), "--max-frames", "5",
                    "--no-progress", "--out", str(tmp_path / "bench-out"), cwd=tmp_path)
    assert "detector-onnx-int8" in bench.stdout
    frame = next((run / "scene" / "holdout" / "images").iterdir())
    det = run_cli("edge.cli", "detect", str(frame), "--manifest", str(run), "--model", "detector-onnx-int8",
                  cwd=tmp_path)
    record = json.loads(det.stdout.splitlines()[0])
    assert record["frame"] == frame.name and record["count"] == len(record["boxes"])
    return result


def test_demo_on_a_synthetic_video(tmp_path):
    video = synthetic_video.write_video(tmp_path / "walkers.avi", n_frames=80)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    # A relative --runs-dir, as a user types it.
    proc = run_cli("trainer.cli", "demo", "--video", str(video), "--name", "synth", "--runs-dir", "runs",
                   "--config", str(cfg), "--no-progress", cwd=tmp_path)
    assert "PSEUDO" in proc.stdout or "pseudo" in proc.stdout
    assert "stage times" in proc.stdout
    check_run(tmp_path / "runs" / "synth", tmp_path, ONNX_MODELS + NCNN_MODELS)


@pytest.mark.real
def test_quick_demo_on_vtest(vtest_video, tmp_path):
    run_cli("trainer.cli", "demo", "--video", str(vtest_video), "--name", "vtest", "--runs-dir",
            str(tmp_path / "runs"), "--quick", "--no-progress", cwd=tmp_path)
    result = check_run(tmp_path / "runs" / "vtest", tmp_path, ONNX_MODELS)
    assert result["data"]["frames_with_person"] >= 0.8 * result["data"]["frames"]  # people walk through the whole video
