"""Ultralytics in these tests keeps its settings and fonts in a temp cache, not the user's ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1-epoch toy detector (imgsz 64) and classifier (imgsz 32) to export, trained once per session."""
    from toydata import toy_models

    return toy_models(tmp_path_factory.mktemp("toy-yolo-export"))
