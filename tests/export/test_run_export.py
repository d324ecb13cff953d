"""`trainer export` on a run: the models are exported at the size the train stage recorded, whatever the
export config's own train section says (a model trained at 64 exported at the default 320 would be wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import CctvkitError
from edge.manifest import Manifest
from trainer import pipeline
from trainer.config import ExportParams, PipelineConfig


def test_export_uses_the_trained_input_size(run_with_train_stage, tmp_path: Path) -> None:
    m = run_with_train_stage(tmp_path / "run", {"detector_imgsz": 64, "classifier_imgsz": 32})
    cfg = PipelineConfig()  # its train section says 320 / 160
    assert (cfg.train.detector_imgsz, cfg.train.classifier_imgsz) == (320, 160)
    cfg.export = ExportParams(calibration_images=32, verify=False)
    pipeline.run_export(m, cfg, progress=False)
    sizes = {name: spec.imgsz for name, spec in Manifest.load(tmp_path / "run").models().items()}
    assert sizes == {
        "detector-onnx-fp32": (64, 64), "detector-onnx-int8": (64, 64),
        "classifier-onnx-fp32": (32, 32), "classifier-onnx-int8": (32, 32),
    }


def test_a_train_stage_without_sizes_is_a_clear_error(run_with_train_stage, tmp_path: Path) -> None:
    m = run_with_train_stage(tmp_path / "run", {})
    cfg = PipelineConfig()
    cfg.export = ExportParams(calibration_images=32, verify=False)
    with pytest.raises(CctvkitError, match="does not record detector_imgsz"):
        pipeline.run_export(m, cfg, progress=False)
    assert not (tmp_path / "run" / "export").exists()
