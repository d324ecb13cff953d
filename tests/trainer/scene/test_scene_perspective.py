"""Perspective fit: robust to outliers, clear error without people, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import synthetic_video as synth

from edge.errors import CctvkitError
from trainer.scene.perspective import Perspective, fit_perspective


def test_fit_recovers_the_line_despite_outliers():
    rng = np.random.default_rng(0)
    rows = rng.uniform(100, 500, 200)
    heights = 0.25 * rows + 12 + rng.normal(0, 2, 200)
    bad = rng.choice(200, 50, replace=False)  # a quarter merged pairs / half people
    heights[bad[:25]] *= 1.8
    heights[bad[25:]] *= 0.5
    model, inliers = fit_perspective(rows, heights)
    assert model.a == pytest.approx(0.25, abs=0.01) and model.b == pytest.approx(12, abs=3)
    assert inliers[bad].sum() <= 2 and model.inliers >= 140 and model.n_points == 200
    assert model.median_abs_residual_px < 3
    assert model.row_range[0] >= 100 and model.row_range[1] <= 500
    assert model.height_at(300) == pytest.approx(0.25 * 300 + 12, abs=2)
    assert model.height_at(-1000) == 1.0  # never a negative person


def test_fit_is_deterministic():
    rng = np.random.default_rng(4)
    rows = rng.uniform(0, 100, 40)
    heights = rows + rng.normal(0, 5, 40)
    assert fit_perspective(rows, heights)[0] == fit_perspective(rows, heights)[0]


def test_too_few_people_is_an_error_naming_the_video():
    with pytest.raises(CctvkitError) as err:
        fit_perspective(np.arange(5.0), np.arange(5.0), video="cam3.mp4")
    assert "cam3.mp4" in str(err.value) and "no people found" in str(err.value)


def test_json_round_trip_and_bad_json():
    model = Perspective(0.3, -4.5, 100, 90, 2.5, (120.0, 400.0))
    doc = json.loads(json.dumps(model.to_json()))
    assert set(doc) == {"model", "a", "b", "n_points", "inliers", "median_abs_residual_px", "row_range"}
    assert Perspective.from_json(doc) == model
    with pytest.raises(CctvkitError, match="perspective.json"):
        Perspective.from_json({"model": "linear", "b": 1.0})


def test_scene_recovers_the_synthetic_slope(synth_scene: tuple[Path, dict]):
    out, summary = synth_scene
    doc = json.loads((out / "perspective.json").read_text())
    assert doc["model"] == "linear"
    assert doc["a"] == pytest.approx(synth.A, abs=0.04)
    # Heights agree where the walkers were (the intercept alone is poorly conditioned).
    model = Perspective.from_json(doc)
    for row in (120, 170, 220):
        assert model.height_at(row) == pytest.approx(synth.height_at(row), rel=0.1)
    assert doc["inliers"] >= 0.8 * doc["n_points"] and doc["n_points"] >= 30
