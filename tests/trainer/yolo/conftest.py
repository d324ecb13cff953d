"""Ultralytics in these tests keeps its settings and fonts in a temp cache, not the user's ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Toy data sets (hashed before training), a 1-epoch detector (imgsz 64) and classifier (imgsz 32)
    trained once per session from an empty temp cwd."""
    from toydata import make_toy_classify_dataset, make_toy_detect_dataset

    from edge.manifest import sha256_tree
    from trainer.yolo.train import train_classifier, train_detector

    root = tmp_path_factory.mktemp("toy-yolo-train")
    det_yaml = make_toy_detect_dataset(root / "data" / "detect")
    cls_root = make_toy_classify_dataset(root / "data" / "classify")
    hashes = {"detect": sha256_tree(det_yaml.parent), "classify": sha256_tree(cls_root)}
    cwd = tmp_path_factory.mktemp("train-cwd")
    old = Path.cwd()
    os.chdir(cwd)  # Ultralytics must not write into the cwd; a test checks this folder stays empty
    try:
        det = train_detector(
            det_yaml, root / "models", epochs=1, imgsz=64, batch=8, workers=0, progress=False
        )
        cls = train_classifier(
            cls_root, root / "models", epochs=1, imgsz=32, batch=8, workers=0, progress=False
        )
    finally:
        os.chdir(old)
    return {
        "detect_yaml": det_yaml,
        "classify_root": cls_root,
        "hashes": hashes,
        "cwd": cwd,
        "detector": det,
        "classifier": cls,
    }
