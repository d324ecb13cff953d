"""The generated-N arm end to end on generated footage: scene-base trains the person generator on its own
cutouts and samples gated persons once, the arm composes with N % of the persons generated, trains, exports
and is scored on the real test split like every arm. A few generator steps and one epoch: ~2 minutes.

The gate is off here: a generator after 10 steps makes noise no detector calls a person (the gate itself is
tested in tests/trainer/diffusion/test_persons_stage.py)."""

from __future__ import annotations

import json

import pytest
from experiment_footage import make_footage

from edge.manifest import Manifest
from trainer.experiment import run as run_mod
from trainer.experiment.config import load_experiment_config

TINY = """
name: gen
runs_dir: {runs}
data: {data}
split: {{block_size: 10, guard: 1, val_fraction: 0.2, test_fraction: 0.2}}
arms: [generated-50]
budget: cpu
pipeline:
  scene: {{plate_frames: 20, calib_frames: 30, scan_stride: 1, train_frames: 40, holdout_frames: 4,
           max_cutouts: 60}}
  persons: {{steps: 10, n: 16, sample_steps: 3, gate: "off"}}
  compose: {{n_images: 48, cls_size: 32}}
  train: {{detector_epochs: 1, detector_imgsz: 64, classifier_epochs: 1, classifier_imgsz: 32, batch: 8,
          workers: 0}}
  export: {{calibration_images: 32, verify_timing_frames: 2}}
"""


@pytest.mark.slow
def test_generated_arm(tmp_path):
    data, _ = make_footage(tmp_path, n=100, negatives=0)
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(TINY.format(runs=tmp_path / "runs", data=data))
    doc = run_mod.run_experiment(load_experiment_config(cfg_path), progress=False)

    exp = tmp_path / "runs" / "gen"
    (arm,) = doc["arms"]
    assert arm["status"] == "ok", arm.get("error")
    assert arm["real_label_percent"] is None  # off the label ratio curve
    assert set(arm["metrics"]) >= {"map50", "map50_95"}
    base = Manifest.load(exp / "scene-base")
    assert {"scene", "generator", "persons", "compose"} <= set(base.data["stages"])  # compose was not dropped
    m = Manifest.load(exp / "arms" / "generated-50")
    assert {"generator", "persons", "compose", "train", "export"} <= set(m.data["stages"])
    compose = m.stage("compose")
    assert compose["params"]["persons"] == {"real": 0.5, "generated": 0.5}
    by = compose["summary"]["persons_by_source"]["train"]
    assert by["generated"] > 0 and by["real"] > 0
    assert arm["persons_gate"]["by"] == "off" and arm["persons_gate"]["kept"] == 16
    kept = json.loads((exp / "arms" / "generated-50" / "persons" / "persons.json").read_text())["cutouts"]
    assert len(kept) == 16 and all(c["frame"] >= 0 for c in kept)
    assert "generated" in arm["description"]
