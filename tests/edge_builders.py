"""tests/edge/conftest.py's builders of tiny real model files, for tests outside tests/edge (a conftest is a
file, not an importable module: it is loaded by path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def edge_builders() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edge_test_builders", ROOT / "tests" / "edge" / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
