"""Fixtures of the bench tests: a tiny run (see tinyrun.py) and the shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinyrun import SHARED, build_tiny_run


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    return build_tiny_run(tmp_path, broken=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "thermal-harbour").is_dir() or not (SHARED / "models").is_dir():
        pytest.skip("needs ../shared/data")
    return SHARED
