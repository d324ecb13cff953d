"""Shared by the benchmark scripts: where the data is, which models to run, frames of a looping video."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.atomic import atomic_write_text, sha256_file
from edge.backends import spec_from_onnx
from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.types import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT.parent / "shared" / "data" / "vtest" / "vtest.avi"
DEMO_RUN = ROOT / "runs" / "demo"  # where `make demo` writes its run


@dataclass(frozen=True)
class Case:
    """One model file to benchmark, with the spec edge reads it with."""

    label: str
    path: Path
    spec: ModelSpec


def check_video(path: Path) -> Path:
    cap = cv2.VideoCapture(str(path))
    ok = cap.isOpened() and cap.read()[0]
    cap.release()
    if not ok:
        raise CctvkitError("cannot decode the video", path, "pass --video with a video OpenCV can read")
    return path


def frames(path: Path, skip: int = 0) -> Iterator[np.ndarray]:
    """Decoded BGR frames from frame `skip` on, the video looping forever (re-opened at its end).
    Skipped frames are decoded before the first yield, so callers that time the loop do not pay for them."""
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(skip):
            if not cap.grab():
                cap.release()
                cap = cv2.VideoCapture(str(path))
        while True:
            ok, frame = cap.read()
            if not ok:
                cap.release()
                cap = cv2.VideoCapture(str(path))
                ok, frame = cap.read()
                if not ok:
                    raise CctvkitError("the video yields no frames", path, "pass another --video")
            yield frame
    finally:
        cap.release()


def run_case(run_dir: Path, name: str) -> Case:
    manifest = Manifest.load(run_dir)
    path = manifest.model_path(name)  # checks the sha256 recorded in the manifest
    spec = manifest.models()[name]
    if spec.format != "onnx" or spec.task != "detect":
        raise CctvkitError(
            f"model '{name}' is a {spec.format} {spec.task} model",
            run_dir,
            "pick an ONNX detector with --model",
        )
    return Case(f"{name} @{spec.imgsz[0]}", path, spec)


def onnx_case(path: Path) -> Case:
    """A detector ONNX given by path, read with edge's own spec_from_onnx (its metadata names the person
    class; nothing is guessed)."""
    spec = spec_from_onnx(path)
    if spec.task != "detect":
        raise CctvkitError(f"a {spec.task} model, not a detector", path, "pass a detector ONNX")
    return Case(f"{path.name} @{spec.imgsz[0]}", path, spec)


def bench_cache(work_dir: Path | None = None) -> Path:
    """Where exports are cached, mode 0700: `work_dir`, default <cache>/bench, <cache> being $CCTVKIT_CACHE,
    $XDG_CACHE_HOME/cctvkit or ~/.cache/cctvkit. Not /tmp: anyone can create files there, and a planted
    .onnx would be benchmarked as ours."""
    from export.offline import cache_dir

    d = Path(work_dir) if work_dir is not None else cache_dir() / "bench"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = d.lstat()
    if d.is_symlink() or st.st_uid != os.getuid():
        raise CctvkitError("the export cache is a link or another user's folder", d, "remove it or pass --work-dir")
    d.chmod(0o700)  # mkdir's mode is masked by the umask and leaves an existing folder as it was
    return d


def exported_case(run_dir: Path, imgsz: int, work_dir: Path | None = None) -> Case:
    """The run's trained detector.pt exported to ONNX at `imgsz`, for sizes the run did not export itself.

    Cached in bench_cache() under a key of what determines the file (the .pt's recorded sha256, task,
    imgsz, opset), beside a record of the .onnx's own sha256: an entry is reused only when the file still
    hashes to its record, and rebuilt otherwise (a tampered, truncated or planted file is never used)."""
    from export.onnx_export import OPSET, export_onnx
    from export.pt_trust import recorded_pt

    pt, pt_sha = recorded_pt(Manifest.load(run_dir), "detector.pt")
    params = {"source_sha256": pt_sha, "task": "detect", "imgsz": int(imgsz), "opset": OPSET}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]
    cache = bench_cache(work_dir)
    out, record = cache / f"detector-{imgsz}-{key}.onnx", cache / f"detector-{imgsz}-{key}.json"
    try:
        fresh = json.loads(record.read_text())
        reuse = fresh["params"] == params and out.is_file() and sha256_file(out) == fresh["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        reuse = False  # no record, or a broken one: build again
    if reuse:
        spec = spec_from_onnx(out)
    else:
        spec = export_onnx(pt, out, task="detect", imgsz=imgsz, sha256=pt_sha)  # renamed into place whole
        atomic_write_text(record, json.dumps({"params": params, "sha256": sha256_file(out)}, indent=2))
    spec = ModelSpec.from_json({**spec.to_json(), "path": str(out)})
    return Case(f"{pt.name} exported @{imgsz}", out, spec)


def default_threads() -> int:
    """All the cores this process may use: what ONNX Runtime picks when nobody sets a count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
