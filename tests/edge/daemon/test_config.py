from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import edge.config
from edge.config import DaemonConfig, load_config
from edge.errors import CctvkitError


def example_yaml() -> str:
    """The YAML example in edge/config.py's docstring (the indented block)."""
    doc = edge.config.__doc__ or ""
    block = doc[doc.index("    model:"):]
    return textwrap.dedent(block)


def test_the_documented_example_is_a_valid_config(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(example_yaml())
    cfg = load_config(path)
    assert cfg.model.manifest == tmp_path / "runs/site1"  # relative to the config file
    assert cfg.source.type == "v4l2"
    assert cfg.records.sqlite == Path("/var/lib/cctvkit/events.db")
    assert cfg.http.host == "127.0.0.1"


def test_the_example_documents_every_key():
    text = edge.config.__doc__ or ""
    for name, field in DaemonConfig.model_fields.items():
        assert re.search(rf"^\s*{name}:", text, re.M), f"section {name} is not documented"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            for key in sub.model_fields:
                assert re.search(rf"^\s*#?\s*{key}:", text, re.M), f"{name}.{key} is not documented"


def test_relative_paths_follow_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "edge.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"file": "m/person.onnx", "spec": "m/spec.yaml"},
        "source": {"type": "file", "path": "clips/v.avi"},
        "records": {"jsonl": "out/ev.jsonl", "sqlite": "/abs/ev.db"},
    }))
    cfg = load_config(path)
    base = path.resolve().parent
    assert cfg.model.file == base / "m/person.onnx" and cfg.model.spec == base / "m/spec.yaml"
    assert cfg.source.path == base / "clips/v.avi"
    assert cfg.records.jsonl == base / "out/ev.jsonl" and cfg.records.sqlite == Path("/abs/ev.db")


@pytest.mark.parametrize("model,pattern", [
    ({"manifest": "r", "name": "m", "file": "x.onnx"}, "either manifest \\+ name or file"),
    ({"manifest": "r"}, "manifest and name go together"),
    ({}, "name the model"),
    ({"manifest": "r", "name": "m", "sha256": "0" * 64}, "for a bare file"),
    ({"file": "x.onnx", "sha256": "abc"}, "model.sha256"),
    ({"file": "x.onnx", "threads": 0}, "model.threads"),
])
def test_model_section_errors(tmp_path, model, pattern):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"model": model, "source": {"type": "file", "path": "v.avi"}}))
    with pytest.raises(CctvkitError, match=pattern) as e:
        load_config(path)
    assert "\n" not in str(e.value) and "edge.yaml" in str(e.value)


def test_cap_must_hold_a_rotated_file(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"model": {"file": "x.onnx"}, "source": {"type": "file", "path": "v.avi"},
                                    "records": {"rotate_mb": 50, "max_total_mb": 10}}))
    with pytest.raises(CctvkitError, match="max_total_mb must be at least rotate_mb"):
        load_config(path)


def test_missing_source_and_unknown_source_type(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"model": {"file": "x.onnx"}}))
    with pytest.raises(CctvkitError, match="missing key 'source'"):
        load_config(path)
    path.write_text(yaml.safe_dump({"model": {"file": "x.onnx"}, "source": {"type": "webcam"}}))
    with pytest.raises(CctvkitError, match="unknown source type 'webcam'.*v4l2"):
        load_config(path)
