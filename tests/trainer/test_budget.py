"""The time budget: durations, how a stage's budget is split, "too small" said before anything runs, and
Ultralytics re-planning the epochs of a real (tiny) training to the time it is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import CctvkitError
from trainer.budget import CLASSIFIER_SHARE, SETUP_SECONDS, parse_budget, plan_training

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("90s", 90), ("1h30m", 5400), ("2.5h", 9000),
                                                (" 1m 30s ", 90)])
def test_durations(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["15", "15 minutes", "m", "", "0m", "-5m", "1d"])
def test_bad_durations_name_the_option_and_the_form(text):
    with pytest.raises(CctvkitError, match="--budget") as e:
        parse_budget(text)
    assert "15m" in str(e.value)


STEPS = {"det_images": 600, "cls_images": 600, "det_step": 1.0, "cls_step": 0.1, "batch": 16}  # epoch 38 s


def test_the_budget_is_split_between_the_rounds_and_the_classifier():
    plan = plan_training(1000, rounds=2, **STEPS)
    usable = 1000 - 4 * SETUP_SECONDS  # each of the 4 trainings' setup and final validation come off first
    assert plan.classifier == pytest.approx(CLASSIFIER_SHARE * usable)
    assert len(plan.detector_rounds) == 3 and sum(plan.detector_rounds) + plan.classifier == pytest.approx(usable)
    assert plan.detector_rounds[0] > plan.detector_rounds[1] == plan.detector_rounds[2] > plan.detector_epoch


def test_rounds_the_budget_cannot_give_an_epoch_are_dropped_then_it_is_too_small():
    assert len(plan_training(200, rounds=2, **STEPS).detector_rounds) == 2  # one round fits, not two
    assert len(plan_training(90, rounds=2, **STEPS).detector_rounds) == 1
    with pytest.raises(CctvkitError, match="leaves 6 s for the detector's training; one epoch of 600 images "
                                           "takes about 38 s here") as e:
        plan_training(40, rounds=2, **STEPS)
    assert "give training at least 75 s" in e.value.fix


def test_a_demo_budget_too_small_for_one_epoch_stops_before_anything_is_written(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainer.cli", "demo", "--budget", "20s", "--runs-dir",
                           str(tmp_path / "runs"), "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--budget leaves" in lines[0] and "one epoch of 320 images" in lines[0]
    assert list((tmp_path / "runs").iterdir()) == []
    bad = subprocess.run([sys.executable, "-m", "trainer.cli", "demo", "--budget", "soon"], cwd=tmp_path,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "--budget 'soon' is not a duration" in bad.stderr


def test_ultralytics_replans_the_epochs_to_the_time_it_is_given(tmp_path):
    from toydata import make_toy_detect_dataset

    from trainer.yolo.train import train_detector

    det_yaml = make_toy_detect_dataset(tmp_path / "data")
    res = train_detector(det_yaml, tmp_path / "out", epochs=200, imgsz=64, batch=8, workers=0, progress=False,
                         overrides={"time": 10 / 3600})
    # 200 toy epochs take minutes; 10 s buy a few, and the result says how many ran, not how many were asked
    assert 1 <= res.epochs < 200
    assert res.seconds < 10 + 60  # stopped on time (+ setup, the final validation, a slow epoch)
    assert len((res.save_dir / "results.csv").read_text().splitlines()) - 1 == res.epochs


def test_the_demo_keeps_to_its_default_budget_unless_told_otherwise():
    """`trainer demo` without --budget keeps to the README's 15 minutes; --budget off, --quick or a config
    that sets the training's epochs train the configured epochs instead."""
    import argparse

    from trainer.cli import DEMO_BUDGET, _demo_budget
    from trainer.config import PipelineConfig, TrainParams

    def budget(cfg: PipelineConfig, **kw) -> float | None:
        return _demo_budget(argparse.Namespace(**{"budget": None, "quick": False, **kw}), cfg)

    assert budget(PipelineConfig()) == parse_budget(DEMO_BUDGET) == 900
    assert budget(PipelineConfig(), budget="off") is None
    assert budget(PipelineConfig(), quick=True) is None
    assert budget(PipelineConfig(train=TrainParams.model_validate({"detector_epochs": 3}))) is None
    assert budget(PipelineConfig(), budget="20m") == 1200
