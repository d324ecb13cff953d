"""An arm that fails is reported with its reason and the next arm still runs; the report renders."""

from __future__ import annotations

import json

import cv2
from experiment_footage import make_footage

from edge.errors import CctvkitError
from trainer.experiment import run as run_mod
from trainer.experiment.config import load_experiment_config
from trainer.experiment.report import write_report


def test_failed_arms_are_reported_and_the_rest_runs(tmp_path, monkeypatch):
    data, plates = make_footage(tmp_path, n=40, negatives=10)
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(f"name: f\ndata: {data}\nnegatives: {plates}\nruns_dir: {tmp_path / 'runs'}\n"
                        "budget: cpu\nsplit: {block_size: 5}\narms: [label-free, real]\n")
    calls = []

    def broken(arm, *a, **kw):
        calls.append(arm)
        if arm == "label-free":
            raise CctvkitError("no people found", data, "pass footage with people walking")
        raise RuntimeError("boom")

    monkeypatch.setattr(run_mod, "prepare_arm", broken)
    doc = run_mod.run_experiment(load_experiment_config(cfg_path), progress=False)
    assert calls == ["label-free", "real"]  # the second arm ran after the first failed
    exp = tmp_path / "runs" / "f"
    arms = {a["arm"]: a for a in json.loads((exp / "experiment.json").read_text())["arms"]}
    assert arms["label-free"]["status"] == "failed" and "no people found" in arms["label-free"]["error"]
    assert arms["real"]["error"] == "RuntimeError: boom" and (exp / "arms" / "real-error.txt").is_file()
    md = (exp / "experiment.md").read_text()
    assert "**label-free failed:**" in md and "RuntimeError: boom" in md and doc["complete"]
    # --force replaces it.
    run_mod.run_experiment(load_experiment_config(cfg_path), progress=False, force=True)


def test_report_with_all_arm_kinds(tmp_path):
    def ok(arm, pct, m50):
        return {"arm": arm, "status": "ok", "description": f"{arm} data", "train_images": 10, "seconds": 5.0,
                "real_label_percent": pct,
                "metrics": {"map50": m50, "map50_95": m50 / 2, "box_precision": 0.5, "box_recall": 0.4}}
    doc = {"name": "r", "test_set": {"path": "/x/test", "frames": 7, "frames_with_person": 6, "boxes": 11,
                                     "source": "/x"},
           "split": "/x/split.json", "budget": "cpu", "evaluation": "verify.json", "shared": "scene once",
           "pipeline": {"train": {"detector_epochs": 1, "detector_imgsz": 64, "batch": 8, "seed": 0}},
           "complete": True,
           "arms": [ok("real", 100, 0.8), ok("label-free", 0, 0.3), ok("synthetic-only", None, 0.2),
                    ok("hybrid-10", 10, 0.5), {"arm": "hybrid-50", "status": "failed", "error": "why"}]}
    files = write_report(doc, tmp_path)
    md = files["experiment.md"].read_text()
    assert "**7 frames** (6 with a person), **11 boxes**" in md and "`/x/test`" in md
    assert "| hybrid-10 | hybrid-10 data | 10 | 0.500 | 0.62× | 0.250 | 0.62× | 0.500 | 0.400 | - | - | 5 |" in md
    assert "| real | real data | 10 | 0.800 | 1.00× | 0.400 | 1.00× |" in md  # no count MAE yet
    assert "**hybrid-50 failed:** why" in md
    assert cv2.imread(str(files["experiment.png"])).shape[0] > 100
