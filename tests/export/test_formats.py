"""The export format registry (export/formats), `trainer export --formats` and its YAML key export.formats."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.errors import CctvkitError
from export.formats import FORMATS, available_formats, formats_to_export, get_format, parse_formats
from export.formats.base import ExportFormat
from export.params import ExportParams

ROOT = Path(__file__).resolve().parents[2]


def test_registry_is_one_plug_in_per_format_with_one_signature() -> None:
    assert list(FORMATS) == ["onnx", "ncnn", "litert"]
    for name, fmt in FORMATS.items():
        assert issubclass(fmt, ExportFormat) and fmt.name == name and fmt.summary
        assert (ROOT / "export" / "formats" / f"{name}.py").is_file()
        assert list(inspect.signature(fmt.export).parameters) == ["model", "calib", "params", "out", "progress"]
    assert set(available_formats()) == set(FORMATS)


def test_unknown_format_lists_the_valid_ones_and_why_others_are_unavailable(monkeypatch) -> None:
    with pytest.raises(CctvkitError, match=r"unknown export format 'tflite' -- choose from: onnx, ncnn, litert \("):
        get_format("tflite")
    with monkeypatch.context() as m:  # the ncnn wheel missing: None in sys.modules fails its find_spec
        m.setitem(sys.modules, "ncnn", None)
        assert available_formats()["ncnn"] == "not installed (ncnn is missing: pip install 'cctvkit[trainer,export]')"
        with pytest.raises(CctvkitError) as e:
            get_format("bogus")
        assert "choose from: onnx, ncnn, litert (ncnn: not installed (ncnn is missing" in str(e.value)
        with pytest.raises(CctvkitError, match=r"^export format 'ncnn' is not installed \(ncnn is missing"):
            get_format("ncnn")
        with pytest.raises(CctvkitError, match="export format 'ncnn' is not installed"):
            formats_to_export(["ncnn"])  # the export stage checks before it writes anything
    with pytest.raises(CctvkitError, match=r"unknown export formats 'a', 'b' -- choose from"):
        formats_to_export(["a", "onnx", "b"])


def test_onnx_always_then_registry_order(monkeypatch) -> None:
    for fmt in FORMATS.values():
        monkeypatch.setattr(fmt, "unavailable", classmethod(lambda cls: None))
    assert [f.name for f in formats_to_export(["litert", "ncnn"])] == ["onnx", "ncnn", "litert"]
    assert [f.name for f in formats_to_export([])] == ["onnx"]
    assert [f.name for f in formats_to_export(["onnx", "onnx"])] == ["onnx"]


def test_params_validate_names_through_the_registry() -> None:
    assert ExportParams().formats == ["onnx"]
    assert ExportParams(formats=["ncnn", "onnx"]).formats == ["ncnn", "onnx"]  # recorded as given
    with pytest.raises(ValidationError, match=r"unknown export format 'tflite' -- choose from: onnx, ncnn, litert"):
        ExportParams(formats=["tflite"])


def test_parse_formats() -> None:
    assert parse_formats("onnx,ncnn,litert") == ["onnx", "ncnn", "litert"]
    assert parse_formats(" ncnn , litert ,") == ["ncnn", "litert"]
    with pytest.raises(CctvkitError, match=r"unknown export format 'tfl' -- choose from: onnx, ncnn, litert"):
        parse_formats("onnx,tfl")
    with pytest.raises(CctvkitError, match="--formats names no format"):
        parse_formats(",")


def _export_cfg(*argv: str):
    from trainer.cli import _apply_export_options, _config, build_parser

    args = build_parser().parse_args(["export", "--run", "r", *argv])
    cfg = _config(args)
    _apply_export_options(cfg, args)
    return cfg.export


def test_formats_flag_and_yaml_key_do_the_same_and_the_flag_wins(tmp_path: Path) -> None:
    yaml = tmp_path / "cfg.yaml"
    yaml.write_text("export:\n  formats: [onnx, ncnn]\n  calibration_images: 64\n")
    from_yaml = _export_cfg("--config", str(yaml))
    plain = tmp_path / "plain.yaml"
    plain.write_text("export:\n  calibration_images: 64\n")
    from_flag = _export_cfg("--config", str(plain), "--formats", "onnx,ncnn")
    assert from_yaml.formats == from_flag.formats == ["onnx", "ncnn"]
    assert from_yaml.model_dump() == from_flag.model_dump()
    assert _export_cfg("--config", str(yaml), "--formats", "litert").formats == ["litert"]
    assert _export_cfg("--config", str(yaml)).calibration_images == 64  # the flag leaves the rest alone
    assert _export_cfg("--quick", "--formats", "ncnn").verify_threads == [1]
    assert _export_cfg().formats == ["onnx"]


def test_bad_formats_are_one_line_errors_from_flag_and_yaml(tmp_path: Path, capsys) -> None:
    from trainer.cli import main

    assert main(["export", "--run", str(tmp_path / "none"), "--formats", "onnx,tflite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown export format 'tflite' -- choose from: onnx, ncnn, litert")
    assert err.count("\n") == 1
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("export:\n  formats: [tflite]\n")
    assert main(["export", "--run", str(tmp_path / "none"), "--config", str(yaml)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: key 'export.formats'" in err and "choose from: onnx, ncnn, litert" in err


def test_export_help_names_every_format(capsys) -> None:
    from trainer.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--formats NAMES" in out and "ONNX is always exported" in out
    for name in FORMATS:
        assert f"{name}:" in out


def test_the_pipeline_names_no_format() -> None:
    """A new format is a plug-in file and a registry line: the pipeline only calls export/stage.py."""
    from trainer import pipeline

    source = (ROOT / "trainer" / "pipeline.py").read_text()
    for word in (*FORMATS, "tflite"):
        assert word not in source, word
    body = inspect.getsource(pipeline.run_export)
    assert "ExportStage" in body and ".formats" not in body and "if " not in body
