"""export/offline.py: the one place Ultralytics is configured (offline, settings in our cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge.errors import CctvkitError
from export import offline


def test_configure_sets_offline_env_fonts_and_settings() -> None:
    ultralytics = offline.configure()
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_AUTOINSTALL"] == "0"
    assert "ULTRALYTICS_API_KEY" not in os.environ
    user_dir = offline.user_config_dir()
    assert Path(ultralytics.utils.USER_CONFIG_DIR) == user_dir
    for font in ("Arial.ttf", "Arial.Unicode.ttf"):
        assert (user_dir / font).stat().st_size > 100_000  # DejaVuSans, not an empty placeholder
    settings = json.loads((user_dir / "settings.json").read_text())
    assert settings["sync"] is False
    assert not any(
        settings[k] for k in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
    )
    assert ultralytics.utils.SETTINGS["sync"] is False
    assert ultralytics.utils.ONLINE is False
    assert str(offline.cache_dir()) in settings["runs_dir"]
    # check_font resolves locally (it would otherwise download Arial)
    from ultralytics.utils.checks import check_font

    assert Path(check_font("Arial.ttf")).parent == user_dir


def test_yolo_class_and_fresh_models_without_downloads() -> None:
    YOLO = offline.ultralytics_yolo()
    assert YOLO.__name__ == "YOLO"
    assert offline.load_model("detect").task == "detect"
    assert offline.load_model("classify").task == "classify"


def test_corrupt_or_missing_weights_are_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(CctvkitError, match="broken.pt: cannot load the weights"):
        offline.load_model("detect", bad)
    with pytest.raises(CctvkitError, match="weights file not found"):
        offline.load_model("detect", tmp_path / "yolo11n.pt")  # a name Ultralytics would download
    with pytest.raises(CctvkitError, match="unknown task"):
        offline.load_model("segment")
