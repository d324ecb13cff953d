"""Ultralytics in these tests keeps its settings and fonts in a temp cache, not the user's ~/.cache."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.manifest import Manifest


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1-epoch toy detector (imgsz 64) and classifier (imgsz 32) to export, trained once per session."""
    from toydata import toy_models

    return toy_models(tmp_path_factory.mktemp("toy-yolo-export"))


@pytest.fixture
def run_with_train_stage(toy_models: dict[str, Path]) -> Callable[[Path, dict], Manifest]:
    """make(run_dir, train_params): a run whose compose stage holds the toy data sets and whose train
    stage the toy .pt files, recorded with train_params (the sizes the export stage reads)."""
    return lambda run, params: _run_with_train_stage(toy_models, run, params)


def _run_with_train_stage(toy: dict[str, Path], run: Path, params: dict) -> Manifest:
    m = Manifest.create(run, "toy")
    compose = run / "compose"
    shutil.copytree(toy["detect_yaml"].parent, compose / "detect")
    shutil.copytree(toy["classify_root"], compose / "classify")
    m.record_stage("compose", params={}, outputs={"detect": compose / "detect", "classify": compose / "classify"})
    (run / "train").mkdir()
    pts = {name: run / "train" / name for name in ("detector.pt", "classifier.pt")}
    shutil.copy2(toy["detector"], pts["detector.pt"])
    shutil.copy2(toy["classifier"], pts["classifier.pt"])
    m.record_stage("train", params=params, outputs=pts)
    m.save()
    return m
