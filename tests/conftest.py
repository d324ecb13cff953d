"""Shared fixtures: where the real data lives (../shared/data), skipped with a clear reason when absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test helpers (synthetic_video.py) are importable from every test folder.
sys.path.insert(0, str(Path(__file__).parent))
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


@pytest.fixture(scope="session", autouse=True)
def _cctvkit_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One temp cache for the whole session: Ultralytics reads its config dir once per process, at the first
    configure(), so every test that touches Ultralytics must agree on it (and never use the user's ~/.cache)."""
    os.environ.setdefault("CCTVKIT_CACHE", str(tmp_path_factory.mktemp("cctvkit-cache")))
