from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from edge.config_errors import load_yaml_config
from edge.errors import CctvkitError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int = 2


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Inner()


def test_unknown_key_names_the_yaml_path_and_valid_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inner:\n  thread: 4\n")
    with pytest.raises(CctvkitError) as e:
        load_yaml_config(cfg, Outer)
    msg = str(e.value)
    assert "c.yaml" in msg and "'inner.thread'" in msg and "threads" in msg and "\n" not in msg


def test_bad_value_names_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inner:\n  threads: many\n")
    with pytest.raises(CctvkitError, match="'inner.threads' = 'many'"):
        load_yaml_config(cfg, Outer)


def test_valid_and_broken_yaml(tmp_path):
    good = tmp_path / "g.yaml"
    good.write_text("inner: {threads: 3}\n")
    assert load_yaml_config(good, Outer).inner.threads == 3
    bad = tmp_path / "b.yaml"
    bad.write_text("inner: [\n")
    with pytest.raises(CctvkitError, match="fix the YAML syntax"):
        load_yaml_config(bad, Outer)
