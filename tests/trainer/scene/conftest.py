"""Fixtures for the scene tests: one synthetic video with known people, and one scene built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import synthetic_video as synth

from trainer.scene.params import SceneParams
from trainer.scene.run import build_scene

# Small and quick: every frame is tiny, so scan them all.
SYNTH_PARAMS = {"plate_frames": 30, "calib_frames": 40, "scan_stride": 1}


@pytest.fixture(scope="session")
def synth_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_video(tmp_path_factory.mktemp("video") / "walkers.avi")


@pytest.fixture(scope="session")
def synth_scene(synth_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("scene")
    summary = build_scene(synth_video, out, SceneParams(**SYNTH_PARAMS), progress=False)
    return out, summary


@pytest.fixture(scope="session")
def static_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same background, nobody in it."""
    return synth.write_video(tmp_path_factory.mktemp("static") / "empty_scene.avi", walkers=(), n_frames=30)


@pytest.fixture()
def corrupt_video(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return path
