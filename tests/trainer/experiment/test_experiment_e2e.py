"""A tiny experiment end to end: real, label-free and hybrid-50 arms on generated footage, one test split,
experiment.json/.md/.png; the label-free arm never opens a label file of the data set.

Six 1-epoch trainings (detector + classifier per arm) and three exports: about 4 minutes on 2 busy cores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest
from experiment_footage import make_footage

from edge.formats.yolo import list_images
from edge.manifest import Manifest
from trainer.experiment import run as run_mod
from trainer.experiment.config import load_experiment_config

TINY = """
name: tiny
runs_dir: {runs}
data: {data}
negatives: {plates}
split: {{block_size: 10, guard: 1, val_fraction: 0.2, test_fraction: 0.2}}
arms: [real, label-free, hybrid-50]
budget: cpu
pipeline:
  scene: {{plate_frames: 20, calib_frames: 30, scan_stride: 1, train_frames: 40, holdout_frames: 4,
           max_cutouts: 60}}
  compose: {{n_images: 48, cls_size: 32}}  # export calibrates on >= 32 train images
  train: {{detector_epochs: 1, detector_imgsz: 64, classifier_epochs: 1, classifier_imgsz: 32, batch: 8,
          workers: 0, self_training: {{rounds: 1, epochs: 1}}}}
  export: {{calibration_images: 32, verify_timing_frames: 2}}
"""


@pytest.mark.slow
def test_tiny_experiment(tmp_path, monkeypatch):
    data, plates = make_footage(tmp_path, n=100, negatives=20)
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(TINY.format(runs=tmp_path / "runs", data=data, plates=plates))
    cfg = load_experiment_config(cfg_path)

    # Record every label file of the data set opened while the label-free arm runs (its scene included).
    labels_dir = str((data / "labels").resolve())
    current: dict[str, str | None] = {"arm": None}
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and current["arm"] == "label-free" and isinstance(args[0], str | Path):
            path = str(Path(args[0]).resolve()) if str(args[0]) else ""
            if path.startswith(labels_dir):
                opened.append(path)

    sys.addaudithook(audit)
    real_run_arm = run_mod.run_arm

    def watched(arm, *a, **kw):
        current["arm"] = arm
        try:
            return real_run_arm(arm, *a, **kw)
        finally:
            current["arm"] = None

    monkeypatch.setattr(run_mod, "run_arm", watched)
    doc = run_mod.run_experiment(cfg, progress=False)

    exp = tmp_path / "runs" / "tiny"
    arms = {a["arm"]: a for a in doc["arms"]}
    assert [a["status"] for a in doc["arms"]] == ["ok"] * 3, [a.get("error") for a in doc["arms"]]
    assert opened == [], f"the label-free arm opened label files: {opened[:3]}"
    for name in ("experiment.json", "experiment.md", "experiment.png"):
        assert (exp / name).is_file()
    assert cv2.imread(str(exp / "experiment.png")) is not None
    md = (exp / "experiment.md").read_text()
    test = doc["test_set"]
    assert f"{test['frames']} frames" in md and f"{test['boxes']} boxes" in md and str(exp / "test") in md
    for name in arms:
        assert f"| {name} |" in md
    assert json.loads((exp / "experiment.json").read_text())["complete"] is True

    split = json.loads((exp / "split.json").read_text())
    test_names = set(split["splits"]["test"])
    for name, arm in arms.items():
        m = Manifest.load(exp / "arms" / name)
        data_stage = "import" if name == "real" else "compose"  # the real arm is a `trainer import` run
        assert m.data["complete"] and set(m.data["stages"]) >= {data_stage, "train", "export"}
        verify = json.loads((m.run_dir / "export" / "verify.json").read_text())
        # Every arm was scored on the same real test folder, every test frame.
        assert verify["data"]["path"] == str((exp / "test").resolve()) and verify["data"]["frames"] == test["frames"]
        assert 0 <= arm["metrics"]["map50"] <= 1 and arm["leakage_check"]["passed"]
        # identical hyper-parameters; a self-training round adds its epoch where there are pseudo-labels
        assert arm["train"] == {"epochs": 1 if name == "real" else 2, "imgsz": 64,
                                "init": {"from": "scratch", "reason": "no teacher"}}
    # Self-training: the real arm has no pseudo-label to relabel; the others score each round's labels on the
    # real labels of the training frames and its detector on the test set, the last round like the verify row.
    assert "self_training" not in arms["real"]
    real_rounds = Manifest.load(exp / "arms" / "real").stage("train")["summary"]["self_training"]
    assert "no pseudo-labelled real frame" in real_rounds[0]["self_training_skipped"]
    for name in ("label-free", "hybrid-50"):
        rounds = arms[name]["self_training"]
        assert [r["round"] for r in rounds] == [0, 1]
        assert rounds[1]["detector"]["map50_95"] == pytest.approx(arms[name]["metrics"]["map50_95"], abs=1e-9)
        assert rounds[0]["labels"]["precision"] == pytest.approx(doc["pseudo_labels"]["precision"])
        assert rounds[1]["labels"]["frames"] > 0 and "round 1" in rounds[1]["labels"]["what"]
        assert f"Self-training rounds of arm {name}" in md
        m = Manifest.load(exp / "arms" / name)
        relabel = m.stage("train")["summary"]["self_training"][1]["relabel"]
        assert relabel["boxes_before"] > 0 and relabel["fuse"] == "union"
        kept = list((m.output("train", "self-training") / "round-1" / "labels").iterdir())
        assert len(kept) == rounds[1]["labels"]["frames"]
        for k in (0, 1):
            m.output("train", f"detector-round-{k}.pt")  # recorded with its sha256
    # The real arm's import split is the experiment's split.
    imp = json.loads((exp / "arms" / "real" / "import" / "import.json").read_text())
    assert imp["splits"]["test"] == split["splits"]["test"] and not test_names & set(imp["splits"]["train"])
    assert arms["real"]["real_label_percent"] == 100 and arms["label-free"]["real_label_percent"] == 0
    # hybrid-50: label-free's composed set + half the train frames with their real labels, named in the manifest.
    hyb = Manifest.load(exp / "arms" / "hybrid-50").stage("compose")
    n_train = len(split["splits"]["train"])
    assert hyb["summary"]["hybrid"]["frames"] == round(n_train / 2) == len(arms["hybrid-50"]["hybrid_frames"])
    assert not test_names & set(hyb["summary"]["hybrid"]["sources"])
    assert arms["hybrid-50"]["train_images"] == arms["label-free"]["train_images"] + round(n_train / 2)
    lf_train = list_images(exp / "arms" / "label-free" / "compose" / "detect" / "images" / "train")
    assert not any(p.name.startswith("real-label__") for p in lf_train)
    assert arms["label-free"]["scene_shared_from"] == str((exp / "scene-base").resolve())
    # The labeller's ceiling, scored after the arms: the synthetic walkers are found well (measured on
    # the real labels of the same training frames, not by the labeller itself).
    q = doc["pseudo_labels"]
    assert q is not None and q["frames"] > 0 and q["real_boxes"] > 0
    assert 0.5 < q["precision"] <= 1 and 0.5 < q["recall"] <= 1 and "pseudo-labels of the label-free arms" in md
