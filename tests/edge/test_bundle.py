"""`edge bundle RUN --model NAME --out DIR` on a tiny real run (tests/bench/tinyrun.py: ONNX and ncnn models):
the bundle is a run of its own whose manifest checks every file; bundling again leaves it alone; a wrong name
or a changed file is one `error:` line (exit 2) and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from edge_builders import load_by_path

from edge.atomic import sha256_file
from edge.bundle import make_bundle
from edge.detector import Detector, load_from_manifest
from edge.errors import CctvkitError
from edge.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]


# tests/bench is not on sys.path for tests/edge.
TINY = load_by_path("tinyrun", REPO / "tests" / "bench" / "tinyrun.py")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return TINY.build_tiny_run(tmp_path)


def _bundle(run: Path, name: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "bundle", str(run), "--model", name, "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def _stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in [folder, *folder.iterdir()]}


def test_bundle_is_a_checked_run_of_its_own_and_a_second_run_leaves_it_alone(run: Path, tmp_path: Path):
    out = tmp_path / "bundles"
    proc = _bundle(run, "det-onnx", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    sha = sha256_file(run / "export" / "det.onnx")
    folder = out / f"det-onnx-{sha[:12]}"
    assert summary == {"name": "det-onnx", "version": folder.name, "dir": str(folder.resolve()), "sha256": sha,
                       "files": {"det.onnx": sha}}
    assert f"created {folder.resolve()}" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [folder.name]  # no temp folder left behind
    assert sorted(p.name for p in folder.iterdir()) == ["det.onnx", "manifest.json"]

    m = Manifest.load(folder)
    assert list(m.models()) == ["det-onnx"]
    assert m.models()["det-onnx"].sha256 == sha
    assert m.model_path("det-onnx") == folder.resolve() / "det.onnx"
    # The same spec as in the run, but for its path: a reader gets the model the run exported.
    assert m.models()["det-onnx"].to_json() == {**Manifest.load(run).models()["det-onnx"].to_json(),
                                                "path": "det.onnx"}
    model = load_from_manifest(m, "det-onnx", threads=1)  # and it runs: the tiny detector's one box
    assert isinstance(model, Detector)
    assert len(model.detect(TINY.with_person(TINY.background(0)))) == 1

    before = _stamps(folder)
    again = _bundle(run, "det-onnx", out)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == summary
    assert "unchanged" in again.stderr
    assert _stamps(folder) == before
    assert sorted(p.name for p in out.iterdir()) == [folder.name]


def test_an_unknown_model_lists_the_valid_ones(run: Path, tmp_path: Path):
    out = tmp_path / "bundles"
    _one_line_error(_bundle(run, "det", out), "no model 'det'", "choose one of: cls-onnx, det-ncnn, det-onnx")
    assert not out.exists()


def test_a_changed_source_file_is_refused_and_nothing_is_written(run: Path, tmp_path: Path):
    out = tmp_path / "bundles"
    model = run / "export" / "det.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    _one_line_error(_bundle(run, "det-onnx", out), str(model.resolve()), "sha256 does not match")
    assert not out.exists()
    # The ncnn model's .bin is checked as well as its .param.
    binf = run / "export" / "det-ncnn.bin"
    binf.write_bytes(binf.read_bytes()[::-1])
    with pytest.raises(CctvkitError, match="sha256 does not match") as e:
        make_bundle(run, "det-ncnn", out)
    assert "det-ncnn.bin" in str(e.value)
    assert not out.exists()


def test_an_ncnn_bundle_carries_its_bin_and_a_damaged_bundle_is_rewritten(run: Path, tmp_path: Path):
    out = tmp_path / "bundles"
    summary, written = make_bundle(run, "det-ncnn", out)
    assert written
    param, binf = run / "export" / "det-ncnn.param", run / "export" / "det-ncnn.bin"
    assert summary["files"] == {"det-ncnn.param": sha256_file(param), "det-ncnn.bin": sha256_file(binf)}
    folder = Path(summary["dir"])
    assert folder.name == f"det-ncnn-{sha256_file(param)[:12]}"
    assert sorted(p.name for p in folder.iterdir()) == ["det-ncnn.bin", "det-ncnn.param", "manifest.json"]
    m = Manifest.load(folder)
    assert m.models()["det-ncnn"].extra_files == ["det-ncnn.bin"]
    assert m.data["models"]["det-ncnn"]["extra_sha256"] == {"det-ncnn.bin": sha256_file(binf)}
    assert m.model_path("det-ncnn") == folder / "det-ncnn.param"

    # The bundle's own manifest guards the .bin: damaged in place, a reader refuses it ...
    (folder / "det-ncnn.bin").write_bytes(b"damaged")
    with pytest.raises(CctvkitError, match="sha256 does not match"):
        Manifest.load(folder).model_path("det-ncnn")
    # ... and bundling again replaces the damaged folder instead of calling it unchanged.
    summary2, written2 = make_bundle(run, "det-ncnn", out)
    assert written2 and summary2 == summary
    assert sha256_file(folder / "det-ncnn.bin") == sha256_file(binf)
    Manifest.load(folder).model_path("det-ncnn")
    assert sorted(p.name for p in out.iterdir()) == [folder.name]  # the old copy went, no temp folder left


def test_edge_check_config_accepts_a_config_naming_the_bundle(run: Path, tmp_path: Path):
    summary, _ = make_bundle(run, "det-onnx", tmp_path / "bundles")
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(f"model: {{manifest: {summary['dir']}, name: det-onnx}}\n"
                   "source: {type: file, path: v.avi}\n")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "check-config", str(cfg)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"model det-onnx ({summary['sha256'][:12]})" in proc.stdout
