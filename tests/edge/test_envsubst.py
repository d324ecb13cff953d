"""Issue 14 row 2: `${NAME}` in edge.yaml takes a secret from the environment (edge/envsubst.py), through
the real loader (edge.config.load_config) where it matters."""

from __future__ import annotations

import pytest
import yaml

from edge.config import load_config
from edge.envsubst import expand_env
from edge.errors import CctvkitError

BCRYPT = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"


def write(tmp_path, doc: dict) -> object:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def edge_yaml(url: str, **extra: object) -> dict:
    return {"model": {"file": "person.onnx"}, "source": {"type": "stream", "url": url}, **extra}


def test_references_expand_in_every_string_value_and_nothing_else():
    env = {"PW": "s3cret", "USER": "admin", "N": "2"}
    doc = {"a": "rtsp://${USER}:${PW}@cam/x", "b": ["${N}", 3, None, True], "${PW}": {"deep": "x${N}y"}}
    out = expand_env(doc, "edge.yaml", env)
    assert out == {"a": "rtsp://admin:s3cret@cam/x", "b": ["2", 3, None, True], "${PW}": {"deep": "x2y"}}


@pytest.mark.parametrize("text", [
    BCRYPT,                      # a bcrypt hash is all '$' and never '${'
    "$HOME and $PW",             # the bare shell form is not ours
    "pa$$word{x}",               # a '$' and braces in a password, not together
    "cost $5",
])
def test_text_without_a_reference_passes_untouched(text):
    assert expand_env({"k": text}, "edge.yaml", {"HOME": "/root", "PW": "x", "2b": "no"}) == {"k": text}


def test_double_dollar_is_a_literal_and_expansion_is_one_pass():
    env = {"PW": "${OTHER}", "OTHER": "never"}
    out = expand_env({"lit": "$${PW}", "mixed": "$${PW}=${PW}"}, "edge.yaml", env)
    assert out == {"lit": "${PW}", "mixed": "${PW}=${OTHER}"}  # a value's own '${' is not looked into


def test_a_missing_variable_is_one_line_naming_key_variable_and_fix():
    with pytest.raises(CctvkitError) as e:
        expand_env({"source": {"url": "rtsp://admin:${CAM_PASSWORD}@cam/x"}}, "edge.yaml", {})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("edge.yaml: key 'source.url' uses ${CAM_PASSWORD}")
    assert "CAM_PASSWORD is not set" in msg and "/etc/cctvkit/edge.env" in msg and "EnvironmentFile=" in msg


@pytest.mark.parametrize("text", ["${CAM PASS}", "${CAM_PASS", "${}", "${1ST}"])
def test_a_malformed_reference_is_an_error_not_text(text):
    with pytest.raises(CctvkitError, match=r"key 'records\.0': .*\$\$\{ for a literal"):
        expand_env({"records": [text]}, "edge.yaml", {"CAM_PASS": "x", "1ST": "y"})


def test_load_config_expands_before_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "s3cr:t#1")  # ':' and '#' would have broken YAML if pasted in
    monkeypatch.setenv("WORKERS", "2")
    path = write(tmp_path, edge_yaml("rtsp://admin:${CAM_PASSWORD}@cam/x",
                                     system={"vcgencmd": BCRYPT}, model={"file": "m.onnx", "workers": "${WORKERS}"}))
    cfg = load_config(path)
    assert cfg.source.url == "rtsp://admin:s3cr:t#1@cam/x"
    assert type(cfg.source.url) is str  # the validated config holds plain strings
    assert cfg.model.workers == 2
    assert cfg.system.vcgencmd == BCRYPT


def test_load_config_missing_variable_names_the_file_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CAM_PASSWORD", raising=False)
    path = write(tmp_path, edge_yaml("rtsp://admin:${CAM_PASSWORD}@cam/x"))
    with pytest.raises(CctvkitError, match=r"edge\.yaml: key 'source\.url' uses \$\{CAM_PASSWORD\}"):
        load_config(path)


def test_an_error_about_an_expanded_value_shows_the_reference_not_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("THREADS", "lots-of-SECRET")
    path = write(tmp_path, edge_yaml("rtsp://cam/x", model={"file": "m.onnx", "threads": "${THREADS}"}))
    with pytest.raises(CctvkitError) as e:
        load_config(path)
    assert "'model.threads' = '${THREADS}'" in str(e.value) and "SECRET" not in str(e.value)


def test_load_config_takes_env_and_names_the_env_file_of_a_missing_variable(tmp_path):
    path = write(tmp_path, edge_yaml("rtsp://admin:${PW}@cam/x"))
    cfg = load_config(path, env={"PW": "s3cret"})  # the given mapping, not the process environment
    assert cfg.source.url == "rtsp://admin:s3cret@cam/x"
    with pytest.raises(CctvkitError) as e:
        load_config(path, env={}, env_file="/srv/edge.env")
    assert "key 'source.url' uses ${PW}" in str(e.value)
    assert "add PW=... to /srv/edge.env" in str(e.value)
