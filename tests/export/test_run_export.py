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


def test_every_format_through_the_stage_keeps_the_manifest_entries(run_with_train_stage, tmp_path: Path) -> None:
    """export.formats drives the plug-ins; names, files, paths and summary are those the if-chain wrote."""
    from export.formats import available_formats

    formats = ["litert", "ncnn"] if available_formats()["litert"] is None else ["ncnn"]
    m = run_with_train_stage(tmp_path / "run", {"detector_imgsz": 64, "classifier_imgsz": 32})
    cfg = PipelineConfig()
    cfg.export = ExportParams(calibration_images=32, verify=False, formats=formats)
    entry = pipeline.run_export(m, cfg, progress=False)
    again = Manifest.load(tmp_path / "run")
    variants = [("onnx", "fp32"), ("onnx", "int8"), ("ncnn", "fp32"), ("ncnn", "fp16"), ("ncnn", "int8")]
    if "litert" in formats:
        variants += [("tflite", p) for p in ("fp32", "fp16", "int8", "fullint8")]
    names = [f"{tag}-{fmt}-{prec}" for tag in ("detector", "classifier") for fmt, prec in variants]
    assert list(again.models()) == names  # registry order: ONNX first, whatever order the config gave
    files = []
    for tag in ("detector", "classifier"):
        files += [f"{tag}-fp32.onnx", f"{tag}-int8.onnx"]
        files += [f"{tag}-ncnn-{p}.{ext}" for p in ("fp32", "fp16", "int8") for ext in ("param", "bin")]
        if "litert" in formats:
            files += [f"{tag}-{p}.tflite" for p in ("fp32", "fp16", "int8", "fullint8")]
    assert list(entry["outputs"]) == files
    assert all(entry["outputs"][f]["path"] == f"export/{f}" for f in files)
    summary = [*names[: len(variants)], "detector-calibration-images", *names[len(variants):],
               "classifier-calibration-images"]
    assert list(entry["summary"]) == summary and entry["summary"]["detector-calibration-images"] == 32
    assert entry["params"]["formats"] == formats and set(entry["inputs"]) == {"detector.pt", "classifier.pt"}
    specs = again.models()
    assert specs["detector-ncnn-int8"].path == "export/detector-ncnn-int8.param"
    assert again.data["models"]["detector-ncnn-int8"]["extra_sha256"]
    # ncnn's fp16 storage/arithmetic is chosen per model by export, never left to ncnn's own default
    from export.ncnn_int8 import NCNN_INT8_FP16

    assert [specs[f"detector-ncnn-{p}"].notes["ncnn_fp16"] for p in ("fp32", "fp16", "int8")] == [
        False, True, NCNN_INT8_FP16]
    for name in names:
        again.model_path(name)  # every file where the manifest says, with its sha256
