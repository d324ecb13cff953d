"""Shared by the benchmark scripts: where the data is, which models to run, frames of a looping video."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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


def exported_case(run_dir: Path, imgsz: int, work_dir: Path) -> Case:
    """The run's trained detector.pt exported to ONNX at `imgsz` (reused when already exported from the
    same .pt), for sizes the run did not export itself."""
    from export.onnx_export import export_onnx

    manifest = Manifest.load(run_dir)
    pt = manifest.output("train", "detector.pt")
    out = work_dir / f"{run_dir.name}-detector-{imgsz}.onnx"
    if out.is_file() and out.stat().st_mtime >= pt.stat().st_mtime:
        spec = spec_from_onnx(out)
    else:
        work_dir.mkdir(parents=True, exist_ok=True)
        spec = export_onnx(pt, out, task="detect", imgsz=imgsz)
    spec = ModelSpec.from_json({**spec.to_json(), "path": str(out)})
    return Case(f"{pt.name} exported @{imgsz}", out, spec)


def default_threads() -> int:
    """All the cores this process may use: what ONNX Runtime picks when nobody sets a count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
