"""`edge check-config CONFIG [--env-file F] [--base-dir D]` through the real CLI: a config `edge run` would
start with prints `ok: ...` (exit 0); every mistake is one `error:` line naming the file or the key (exit 2);
no value read from the env file ever reaches the output; --base-dir validates a temp copy as if it were
installed (Ansible's `validate:`). Real files, a real ONNX model, a real read-only folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from edge_builders import const_detector_run
from readonly_dir import read_only

from edge.check_config import read_env_file, scrub
from edge.errors import CctvkitError
from edge.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
SECRET = "Zq9-s3cret-Pw"  # distinctive: it cannot turn up in a message by chance
SECRET_NAME = "Hidden-Model-7x"  # a model name from the env file: the error quotes it, scrubbed
VARS = ("CAM_PASS", "MODEL_NAME", "REC_DIR")  # the test's own variables: never taken from the runner's env


def _install(root: Path) -> Path:
    """An install folder: a run with a real ONNX detector (model `det`) in root/run."""
    const_detector_run(root / "run")
    return root


def _doc(**sections: Any) -> dict[str, Any]:
    """edge.yaml with relative paths only (they resolve against the config's folder or --base-dir)."""
    doc: dict[str, Any] = {
        "model": {"manifest": "run", "name": "det", "threads": 1},
        "source": {"type": "stream", "url": "rtsp://admin:${CAM_PASS}@127.0.0.1:8554/cam"},
        "records": {"jsonl": "rec/ev.jsonl", "sqlite": "rec/ev.db"},
    }
    for k, v in sections.items():
        doc[k] = {**doc.get(k, {}), **v}
    return doc


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _env_file(path: Path, **extra: str) -> Path:
    lines = ["# camera secrets", f"CAM_PASS='{SECRET}'", *(f"{k}={v}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _check(config: Path, *args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    return subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(config), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                          timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert SECRET not in proc.stdout + proc.stderr
    return lines[0]


@pytest.fixture
def install(tmp_path: Path) -> Path:
    return _install(tmp_path / "etc-cctvkit")


def test_a_good_config_is_ok_and_the_secret_stays_out(install: Path):
    cfg = _write(install / "edge.yaml", _doc())
    proc = _check(cfg, "--env-file", _env_file(install / "edge.env"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {cfg}: model det (") and "source stream" in proc.stdout, proc.stdout
    sha = Manifest.load(install / "run").models()["det"].sha256
    assert sha[:12] in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr
    # It checks, it does not prepare: the records folder is not created.
    assert not (install / "rec").exists()


def test_a_misspelt_key_names_it(install: Path):
    doc = _doc()
    doc["records"]["jsonll"] = doc["records"].pop("jsonl")
    cfg = _write(install / "edge.yaml", doc)
    _one_line_error(_check(cfg, "--env-file", _env_file(install / "edge.env")), str(cfg), "records.jsonll")


def test_a_model_changed_after_the_manifest_is_refused(install: Path):
    model = install / "run" / "export" / "det.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    cfg = _write(install / "edge.yaml", _doc())
    _one_line_error(_check(cfg, "--env-file", _env_file(install / "edge.env")), str(model), "sha256")


def test_a_missing_variable_names_the_env_file(install: Path):
    cfg = _write(install / "edge.yaml", _doc(model={"name": "${MODEL_NAME}"}))
    env_file = _env_file(install / "edge.env")
    line = _one_line_error(_check(cfg, "--env-file", env_file), str(cfg), "model.name", "${MODEL_NAME}")
    assert f"add MODEL_NAME=... to {env_file}" in line


def test_a_secret_quoted_by_an_error_is_scrubbed(install: Path):
    # The env file's value reaches an error ("no model 'Hidden-Model-7x'"): the output shows the reference.
    cfg = _write(install / "edge.yaml", _doc(model={"name": "${MODEL_NAME}"}))
    proc = _check(cfg, "--env-file", _env_file(install / "edge.env", MODEL_NAME=SECRET_NAME))
    line = _one_line_error(proc, "no model '${MODEL_NAME}'", "choose one of: det")
    assert SECRET_NAME not in proc.stdout + proc.stderr, line


def test_a_records_folder_that_cannot_be_written(install: Path):
    (install / "ro").mkdir()
    cfg = _write(install / "edge.yaml", _doc(records={"jsonl": "ro/sub/ev.jsonl"}))
    env_file = _env_file(install / "edge.env")
    with read_only(install / "ro"):
        proc = _check(cfg, "--env-file", env_file)
    _one_line_error(proc, "records.jsonl", str(install / "ro"), "cannot be written")


def test_a_records_path_from_the_env_file_is_scrubbed_in_the_error(install: Path):
    (install / "ro").mkdir()
    cfg = _write(install / "edge.yaml", _doc(records={"sqlite": "${REC_DIR}/ev.db"}))
    env_file = _env_file(install / "edge.env", REC_DIR=str(install / "ro"))
    with read_only(install / "ro"):
        proc = _check(cfg, "--env-file", env_file)
    line = _one_line_error(proc, "records.sqlite", "${REC_DIR}/ev.db")
    assert str(install / "ro") not in line


def test_an_unreadable_env_file_names_it(install: Path):
    cfg = _write(install / "edge.yaml", _doc())
    missing = install / "no-such.env"
    _one_line_error(_check(cfg, "--env-file", missing), str(missing), "env file not found")
    binary = install / "binary.env"
    binary.write_bytes(b"CAM_PASS=\xff\xfe\n")
    _one_line_error(_check(cfg, "--env-file", binary), str(binary), "cannot read the env file")


def test_read_env_file_reads_systemd_syntax_and_never_quotes_a_bad_line(tmp_path: Path):
    f = tmp_path / "edge.env"
    f.write_text("# c\n; c\n\n A = 1 \nB=\"x \\\"y\\\" \\$z\"\nC='lit $D'\nE=\n")
    assert read_env_file(f) == {"A": "1", "B": 'x "y" $z', "C": "lit $D", "E": ""}
    f.write_text(f"A=1\nnot a pair {SECRET}\n")
    with pytest.raises(CctvkitError, match="line 2 is not KEY=VALUE") as e:
        read_env_file(f)
    assert SECRET not in str(e.value)
    f.write_text(f"A='{SECRET}\n")
    with pytest.raises(CctvkitError, match="line 1: unclosed quote") as e:
        read_env_file(f)
    assert SECRET not in str(e.value)
    with pytest.raises(CctvkitError, match="cannot read the env file"):
        read_env_file(tmp_path)  # a folder
    if os.geteuid() != 0:  # root reads a mode-000 file all the same
        f.chmod(0)
        with pytest.raises(CctvkitError, match="cannot read the env file"):
            read_env_file(f)


def test_scrub_replaces_longest_values_first_and_leaves_short_ones():
    secrets = {"A": "abcd", "B": "abcdefgh", "C": "on"}
    assert scrub("x abcdefgh abcd on", secrets) == "x ${B} ${A} on"


def test_base_dir_validates_a_temp_copy_as_installed(install: Path, tmp_path: Path):
    # Ansible copies the rendered file to a temp folder and runs `edge check-config %s` on it there.
    staging = tmp_path / "ansible-tmp"
    staging.mkdir()
    copy = shutil.copy(_write(install / "edge.yaml", _doc()), staging / "edge.yaml.tmp")
    env_file = _env_file(install / "edge.env")
    # Without --base-dir the relative `run` resolves beside the temp copy, where there is none ...
    _one_line_error(_check(copy, "--env-file", env_file), str(staging / "run"))
    # ... with it, against the install folder, as `edge run` will resolve it there.
    proc = _check(copy, "--env-file", env_file, "--base-dir", install)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {copy}: model det"), proc.stdout


def test_a_bare_model_file_is_checked_against_model_sha256(install: Path):
    model = install / "run" / "export" / "det.onnx"
    sha = Manifest.load(install / "run").models()["det"].sha256
    good = _write(install / "edge.yaml", _doc(model={"manifest": None, "name": None, "file": "run/export/det.onnx",
                                                     "sha256": sha}))
    proc = _check(good, "--env-file", _env_file(install / "edge.env"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {good}: model det.onnx ({sha[:12]})"), proc.stdout
    bad = _write(install / "bad.yaml", _doc(model={"manifest": None, "name": None, "file": "run/export/det.onnx",
                                                   "sha256": "0" * 64}))
    _one_line_error(_check(bad, "--env-file", install / "edge.env"), str(model), "does not match model.sha256")
