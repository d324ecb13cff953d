"""Shared fixtures: where the real data lives (../shared/data), skipped with a clear reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/data")
    return SHARED


@pytest.fixture(scope="session")
def vtest_video(shared_data: Path) -> Path:
    path = shared_data / "vtest" / "vtest.avi"
    if not path.is_file():
        pytest.skip("needs ../shared/data/vtest/vtest.avi")
    return path
