"""Fixtures for the compose tests: one synthetic scene folder and one composed data set per session."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from compose_scene_factory import BASE, make_scene  # noqa: E402

from trainer.compose import ComposeParams, compose_dataset  # noqa: E402


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scene") / "scene")


@pytest.fixture(scope="session")
def composed(scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """(out_dir, returned summary, compose.json) of a default-parameter run."""
    out = tmp_path_factory.mktemp("composed")
    summary = compose_dataset(scene_dir, out, ComposeParams(**BASE), progress=False)
    return out, summary, json.loads((out / "compose.json").read_text())
