"""The scene and compose stages write exactly what edge/stages.py declares, compose reads the scene through
that declaration, and re-running the scene drops the compose built on the old one."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.manifest import Manifest
from edge.stages import COMPOSE, COMPOSE_READS, SCENE
from trainer import pipeline
from trainer.config import PipelineConfig

SCENE_PARAMS = {"plate_frames": 30, "calib_frames": 40, "scan_stride": 1}  # conftest's synth_scene's
CFG = PipelineConfig.model_validate({"scene": SCENE_PARAMS, "compose": {"n_images": 24, "cls_size": 32}})


def _declared(stage) -> set[str]:
    return {o.name for o in stage.outputs if o.required}


@pytest.fixture(scope="module")
def scened(synth_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    m = Manifest.create(tmp_path_factory.mktemp("contract") / "run", "run")
    m.run_dir.mkdir()
    m.save()
    pipeline.run_scene(m, synth_video, CFG, progress=False)
    return m


def test_scene_writes_exactly_the_declared_outputs(scened: Manifest):
    written = {p.name for p in (scened.run_dir / "scene").iterdir()}
    assert written == _declared(SCENE) == set(scened.stage("scene")["outputs"])
    assert {o.name for o in COMPOSE_READS} <= written


def test_compose_reads_the_declared_scene_and_a_rerun_drops_it(scened: Manifest, synth_video: Path, capsys):
    pipeline.run_compose(scened, CFG, progress=False)
    written = {p.name for p in (scened.run_dir / "compose").iterdir()}
    assert written == _declared(COMPOSE) == set(scened.stage("compose")["outputs"])
    assert set(scened.stage("compose")["inputs"]) == {o.name for o in COMPOSE_READS}
    capsys.readouterr()
    pipeline.run_scene(scened, synth_video, CFG, progress=False)  # a new scene: the old compose is stale
    err = [line for line in capsys.readouterr().err.splitlines() if "dropped" in line]
    assert len(err) == 1 and "compose" in err[0] and "'scene'" in err[0]
    loaded = Manifest.load(scened.run_dir)
    assert list(loaded.data["stages"]) == ["scene"] and loaded.data["complete"] is False
