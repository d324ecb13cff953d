"""benchmarks/_common.py's export cache: a private folder under the user's cache (not /tmp), entries keyed
by what made them (the source .pt's sha256 + export parameters) and reused only while their bytes still
hash to the record written with them."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path

import pytest

from edge.atomic import sha256_file
from edge.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]


def _common():
    # A script folder, not a package: loaded by path under its own name (other tests may load others).
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cache_is_a_private_folder_under_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common = _common()
    monkeypatch.delenv("CCTVKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = common.bench_cache()
    assert d == tmp_path / "xdg" / "cctvkit" / "bench" and _mode(d) == 0o700
    d.chmod(0o755)  # a folder left readable by an older version (or a umask) is tightened again
    assert common.bench_cache() == d and _mode(d) == 0o700
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the XDG spec ignores a relative path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert common.bench_cache() == tmp_path / "home" / ".cache" / "cctvkit" / "bench"


def test_a_tampered_entry_is_rebuilt_and_a_new_pt_gets_a_new_key(
    run_with_train_stage, tmp_path: Path
) -> None:
    import torch

    common = _common()
    run = tmp_path / "run"
    run_with_train_stage(run, {"detector_imgsz": 64, "classifier_imgsz": 32})
    cache = tmp_path / "cache"

    first = common.exported_case(run, 64, cache)
    assert first.path.parent == cache and _mode(cache) == 0o700
    built = first.path.read_bytes()
    stamp = first.path.stat().st_mtime_ns
    assert common.exported_case(run, 64, cache).path.stat().st_mtime_ns == stamp  # intact: reused as it is

    tampered = built[:-64] + bytes(64)  # same name, same size, other bytes
    first.path.write_bytes(tampered)
    again = common.exported_case(run, 64, cache)
    assert again.path == first.path and again.path.read_bytes() != tampered  # rebuilt, not reused
    assert len(again.path.read_bytes()) == len(built) and again.spec.imgsz == (64, 64)

    # A re-trained detector.pt (other weights, recorded by its train stage) is another entry.
    pt = run / "train" / "detector.pt"
    ckpt = torch.load(pt, map_location="cpu", weights_only=False)  # our own fixture file
    with torch.no_grad():
        next(ckpt["model"].parameters()).add_(0.5)
    torch.save(ckpt, pt)
    m = Manifest.load(run)
    m.stage("train")["outputs"]["detector.pt"]["sha256"] = sha256_file(pt)
    m.save()
    retrained = common.exported_case(run, 64, cache)
    assert retrained.path != first.path
    assert first.path.is_file()  # the old entry is still there, under its own key
