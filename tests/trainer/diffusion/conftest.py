"""Fixtures of the person-generator tests (helpers live in persons_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from persons_helpers import make_figures, micro_config


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_figures(tmp_path_factory.mktemp("figures") / "data")


@pytest.fixture(scope="session")
def trained_micro(tmp_path_factory: pytest.TempPathFactory, figures: Path) -> dict[str, Any]:
    """One micro run (8 steps) shared by the sampling and scoring tests."""
    from trainer.diffusion.train import train

    out = tmp_path_factory.mktemp("micro-run") / "run"
    cfg = micro_config(steps=8)
    res = train(cfg, figures, out, progress=False)
    return {"out": out, "ckpt": out / "last.pt", "cfg": cfg, "res": res, "data": figures}


@pytest.fixture(scope="session")
def shared_data_optional() -> Path | None:
    """../shared/data when present (extra checks), else None: the test still runs without it."""
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return shared if shared.is_dir() else None
