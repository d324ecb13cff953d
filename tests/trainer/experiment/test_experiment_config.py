"""The experiment YAML: errors name the key, the budget preset fills only what the user left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import CctvkitError
from trainer.experiment.config import (
    CPU_PRESET,
    DEFAULT_ARMS,
    arm_pipeline,
    equal_training_size,
    load_experiment_config,
)
from trainer.experiment.run import run_experiment

BASE = "name: t\ndata: footage\n"


def load(tmp_path: Path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_experiment_config(path)


@pytest.mark.parametrize(("text", "key"), [
    (BASE + "split: {blok_size: 10}\n", "unknown key 'split.blok_size'"),
    (BASE + "pipeline: {train: {detector_epoch: 1}}\n", "unknown key 'pipeline.train.detector_epoch'"),
    (BASE + "colour: red\n", "unknown key 'colour'"),
    ("name: t\n", "missing key 'data'"),
    (BASE + "arms: [real, hybrid-0]\n", "key 'arms.1'"),
    (BASE + "arms: [real, hybrid-101]\n", "key 'arms.1'"),
    (BASE + "arms: [real, synthetic]\n", "key 'arms.1'"),
    (BASE + "budget: tpu\n", "key 'budget'"),
    (BASE + "split: {val_fraction: 0.5, test_fraction: 0.5}\n", "key 'split'"),
    (BASE + "pipeline: {export: {labels: x}}\n", "key 'pipeline.export.labels'"),
    (BASE + "arms: [teacher]\n", "the arm 'teacher' and the key 'teacher: MODEL' go together"),
    (BASE + "arms: [real]\nteacher: t.onnx\n", "the arm 'teacher' and the key 'teacher: MODEL' go together"),
    (BASE + "pipeline: {scene: {teacher: {fuse: both}}}\n", "key 'pipeline.scene.teacher.fuse'"),
])
def test_config_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(CctvkitError) as e:
        cfg = load(tmp_path, text)
        arm_pipeline(cfg, "cpu", tmp_path / "exp.yaml")
    assert key in str(e.value) and "exp.yaml" in str(e.value)
    assert "\n" not in str(e.value)


def test_defaults_and_preset(tmp_path):
    cfg = load(tmp_path, BASE + "pipeline: {train: {detector_epochs: 2}, compose: {seed: 3}}\n")
    assert cfg.arms == DEFAULT_ARMS and cfg.split.resolved_guard == 5
    assert Path(cfg.data).is_absolute() and Path(cfg.data) == Path.cwd() / "footage"
    cpu = arm_pipeline(cfg, "cpu")
    assert cpu.train.detector_epochs == 2  # the user's key wins
    assert cpu.train.classifier_epochs == CPU_PRESET["train"]["classifier_epochs"]  # the preset fills the rest
    assert cpu.compose.seed == 3
    gpu = arm_pipeline(cfg, "gpu")
    assert gpu.train.classifier_epochs == 20 and gpu.compose.n_images == 400  # project defaults
    # as many composed images as real train frames (val_fraction 0.2 of them go to val), unless set
    assert equal_training_size(cfg, cpu, 627).compose.n_images == 784
    mine = load(tmp_path, BASE + "pipeline: {compose: {n_images: 50}}\n")
    assert equal_training_size(mine, arm_pipeline(mine, "cpu"), 627).compose.n_images == 50


def test_hybrid_any_percent(tmp_path):
    assert load(tmp_path, BASE + "arms: [hybrid-1, hybrid-100, real]\n").arms == ["hybrid-1", "hybrid-100", "real"]


def test_existing_folder_needs_force(tmp_path):
    from experiment_footage import make_footage

    data, _ = make_footage(tmp_path, n=30, negatives=0)
    (tmp_path / "runs" / "t").mkdir(parents=True)
    text = f"name: t\ndata: {data}\nruns_dir: {tmp_path / 'runs'}\nbudget: cpu\nsplit: {{block_size: 5}}\n"
    with pytest.raises(CctvkitError, match="experiment folder already exists.*--force"):
        run_experiment(load(tmp_path, text + "arms: [label-free]\n"), progress=False)
    # every frame shows a person and no negatives: the real arm's classifier could not train; said up front
    with pytest.raises(CctvkitError, match="no person-free frame in the train split and no negatives.*negatives: DIR"):
        run_experiment(load(tmp_path, text), progress=False)
    assert not (tmp_path / "runs" / "t" / "split.json").exists()


def test_a_missing_teacher_fails_when_the_config_loads(tmp_path):
    with pytest.raises(CctvkitError) as e:
        load(tmp_path, BASE + "arms: [teacher]\nteacher: missing.onnx\n")
    assert "teacher model not found" in str(e.value) and str(Path("missing.onnx").resolve()) in str(e.value)
