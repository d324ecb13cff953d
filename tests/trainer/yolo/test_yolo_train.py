from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from toydata import make_toy_classify_dataset, make_toy_detect_dataset

from edge.errors import CctvkitError
from edge.manifest import sha256_tree
from export import offline
from trainer.yolo.train import resolve_device, train_classifier, train_detector


def test_no_progress_hides_every_ultralytics_bar() -> None:
    """Quiet (--no-progress) hides even the bars Ultralytics builds with an explicit disable= (its image
    caching and label scanning pass disable=LOCAL_RANK > 0, which printed a bar per data set)."""
    offline.configure()
    from ultralytics.utils.tqdm import TQDM

    with offline.verbosity(False):
        assert TQDM(range(3), disable=False).disable and TQDM(range(3)).disable
    with offline.verbosity(True):
        bar = TQDM(range(3), disable=False, file=io.StringIO())
        assert not bar.disable and TQDM(range(3), disable=True).disable
        bar.close()


def test_a_direct_call_trains_with_the_pipeline_defaults() -> None:
    """One source of defaults: TrainParams (what `trainer demo` / `trainer run` use) for a direct call too."""
    from trainer.config import TrainParams
    from trainer.yolo.train import _options, train_detector

    p = TrainParams()
    det, cls = _options("detect", {}), _options("classify", {})
    assert (det["epochs"], det["imgsz"]) == (p.detector_epochs, p.detector_imgsz)
    assert (cls["epochs"], cls["imgsz"]) == (p.classifier_epochs, p.classifier_imgsz)
    assert det["batch"] == cls["batch"] == p.batch and det["workers"] == p.workers and det["seed"] == p.seed
    assert train_detector.__kwdefaults__["arch"] == p.detector_arch
    assert _options("classify", {"epochs": 3, "imgsz": 32})["epochs"] == 3
    with pytest.raises(TypeError, match="epoch"):
        _options("detect", {"epoch": 3})  # type: ignore[typeddict-unknown-key]


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(CctvkitError, match="no CUDA"):
            resolve_device("cuda")


def test_bad_detect_data_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CctvkitError, match="data.yaml not found"):
        train_detector(tmp_path / "nope.yaml", tmp_path / "out", epochs=1, imgsz=64, batch=2)
    yaml_path = make_toy_detect_dataset(tmp_path / "ds", n_train=2, n_val=1)
    yaml_path.write_text("train: images/train\nnames:\n  0: person\n")  # no val split
    with pytest.raises(CctvkitError, match="no 'val' split"):
        train_detector(yaml_path, tmp_path / "out", epochs=1, imgsz=64, batch=2)
    yaml_path.write_text("train: images/train\nval: images/missing\nnames:\n  0: person\n")
    with pytest.raises(CctvkitError, match="split 'val' has no images"):
        train_detector(yaml_path, tmp_path / "out", epochs=1, imgsz=64, batch=2)
    assert not (tmp_path / "out").exists()  # checked before anything is staged


def test_bad_classify_layout_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CctvkitError, match="classifier data folder not found"):
        train_classifier(tmp_path / "none", tmp_path / "out", epochs=1, imgsz=32, batch=2)
    root = make_toy_classify_dataset(tmp_path / "cls", n_train=2, n_val=2)
    for p in (root / "val" / "person").iterdir():
        p.unlink()
    with pytest.raises(CctvkitError, match="'val' needs at least two class folders"):
        train_classifier(root, tmp_path / "out", epochs=1, imgsz=32, batch=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_detector_and_classifier(trained: dict[str, Any]) -> None:
    det, cls = trained["detector"], trained["classifier"]
    out = det.weights.parent
    assert det.weights == out / "detector.pt" and det.weights.stat().st_size > 1_000_000
    assert cls.weights == out / "classifier.pt" and cls.weights.stat().st_size > 1_000_000
    assert set(det.metrics) == {"map50", "map50_95", "precision", "recall"}
    assert set(cls.metrics) == {"top1"}
    for res, imgsz in ((det, 64), (cls, 32)):
        assert all(0.0 <= v <= 1.0 for v in res.metrics.values())
        assert res.epochs == 1 and res.imgsz == imgsz and res.seconds > 0
        assert "results.png" in {p.name for p in res.plots}
        assert all(p.suffix == ".png" and p.is_file() for p in res.plots)
        assert res.save_dir is not None and res.save_dir.parent == out / "ultralytics"
    # Ultralytics wrote nothing into the cwd, and nothing (label caches) into the hashed data sets
    assert list(trained["cwd"].iterdir()) == []
    assert sha256_tree(trained["detect_yaml"].parent) == trained["hashes"]["detect"]
    assert sha256_tree(trained["classify_root"]) == trained["hashes"]["classify"]
    # the weights load back as the right tasks, with the data sets' class names
    assert offline.load_model("detect", det.weights).names == {0: "person"}
    assert sorted(offline.load_model("classify", cls.weights).names.values()) == ["no_person", "person"]
    with pytest.raises(CctvkitError, match="weights are a 'classify' model, expected 'detect'"):
        offline.load_model("detect", cls.weights)


def test_detector_arch_yolov8n_trains_and_is_a_yolov8n(tmp_path: Path) -> None:
    """train.detector_arch picks the yaml: a 1-epoch YOLOv8n on toy data has YOLOv8n's C2f blocks."""
    from toydata import make_toy_detect_dataset

    from trainer.yolo.train import train_detector

    det_yaml = make_toy_detect_dataset(tmp_path / "data")
    res = train_detector(det_yaml, tmp_path / "out", epochs=1, imgsz=64, batch=8, workers=0, progress=False,
                         arch="yolov8n")
    kinds = {type(m).__name__ for m in offline.load_model("detect", res.weights).model.modules()}
    assert "C2f" in kinds and "C3k2" not in kinds
    assert "C3k2" in {type(m).__name__ for m in offline.load_model("detect").model.modules()}
