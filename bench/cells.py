"""One cell of the matrix: one model file on one backend with one thread count, timed and scored.

Per cell: cold start (load + warm-up), an accuracy pass over the labelled frames by edge/eval (the one
evaluation core: mAP over the whole score curve, P/R/F1, count MAE and presence at the threshold), then a speed pass at
the operating threshold (latency p50/p95/p99 inference-only and end-to-end, sustained FPS) while
bench/sysmon.py watches CPU, memory, temperature and clocks. Any exception fails this cell only.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.feeds import Feed
from bench.sysmon import CellMonitor
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.eval import DETECTION_KEYS, LabelledSet, model_accuracy
from edge.types import ModelSpec


@dataclass
class ModelEntry:
    """A model to bench: its spec and how to get its (verified) file; resolve() raises CctvkitError."""

    name: str
    spec: ModelSpec
    resolve: Callable[[], Path]
    origin: str


@dataclass
class Cell:
    model: ModelEntry
    backend: str
    threads: int
    unavailable: str | None = None  # known before running (runtime not installed...): fails without running

    @property
    def id(self) -> str:
        return f"{self.model.name}/{self.backend}/t{self.threads}"


@dataclass
class CellOptions:
    conf: float = 0.25  # operating threshold of detectors (P, R, presence, speed pass)
    iou: float = 0.45
    threshold: float = 0.5  # classifier person probability
    warmup: int = 3
    speed_frames: int = 100
    duration_s: float | None = None
    interval_s: float = 0.5


def describe(cell: Cell) -> dict[str, Any]:
    s = cell.model.spec
    return {"id": cell.id, "model": cell.model.name, "task": s.task, "format": s.format, "precision": s.precision,
            "imgsz": list(s.imgsz), "backend": cell.backend, "threads": cell.threads, "origin": cell.model.origin}


def _percentiles(ms: list[float], prefix: str) -> dict[str, float]:
    a = np.asarray(ms, np.float64)
    return {f"{prefix}_p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)}


def _error_text(e: BaseException) -> str:
    if isinstance(e, CctvkitError):
        return str(e)
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(e).__name__}: {e}{at}".replace("\n", " ")


def _load(cell: Cell, opts: CellOptions) -> Detector | Classifier:
    path = cell.model.resolve()
    spec = cell.model.spec
    if spec.task == "detect":
        return Detector(spec, path, backend=cell.backend, threads=cell.threads, conf=opts.conf,
                        iou=opts.iou, classes=[spec.person_class])
    if spec.task == "classify":
        return Classifier(spec, path, backend=cell.backend, threads=cell.threads, threshold=opts.threshold)
    raise CctvkitError(f"unknown task '{spec.task}'", cell.model.origin, "re-run the export")


def _call(model: Detector | Classifier, frame: np.ndarray) -> Any:
    return model.detect(frame) if isinstance(model, Detector) else model.classify(frame)


def accuracy_pass(model: Detector | Classifier, data: LabelledSet, opts: CellOptions) -> dict[str, Any]:
    """edge/eval's scores (the same keys for every cell: a classifier's box scores are None)."""
    out: dict[str, Any] = dict.fromkeys(DETECTION_KEYS)
    out.update(model_accuracy(model, data, conf=opts.conf))
    return out


Tick = Callable[[int, float], None]  # (frames timed so far, seconds since the speed pass began)


def speed_pass(model: Detector | Classifier, feed: Feed, opts: CellOptions, monitor: CellMonitor,
               tick: Tick | None = None) -> dict[str, Any]:
    if isinstance(model, Detector):
        model.conf = opts.conf  # operating threshold: NMS work as in service
    e2e: list[float] = []
    infer: list[float] = []
    monitor.begin_speed()
    start = time.perf_counter()
    stop_at = None if opts.duration_s is None else start + opts.duration_s
    while (len(e2e) < opts.speed_frames) if stop_at is None else (time.perf_counter() < stop_at):
        frame = feed.next()
        t0 = time.perf_counter()
        _call(model, frame)
        e2e.append((time.perf_counter() - t0) * 1e3)
        infer.append(model.timing.infer_ms)
        monitor.frames += 1
        if tick is not None and len(e2e) % 5 == 0:
            tick(len(e2e), time.perf_counter() - start)
    wall = time.perf_counter() - start
    return {
        "speed_frames": len(e2e),
        "speed_seconds": round(wall, 3),
        "fps_sustained": len(e2e) / wall if wall > 0 else None,
        "fps_e2e": 1000.0 / float(np.mean(e2e)),
        "fps_infer": 1000.0 / float(np.mean(infer)),
        **_percentiles(e2e, "latency"),
        **_percentiles(infer, "infer"),
        "feed": feed.description,
    }


def run_cell(cell: Cell, data: LabelledSet | None, feed: Feed, opts: CellOptions,
             tick: Tick | None = None) -> dict[str, Any]:
    """The cell's row: status "ok" with every measurement, or "failed" with the reason (never raises)."""
    row = describe(cell)
    if cell.unavailable is not None:
        return {**row, "status": "failed", "reason": cell.unavailable}
    monitor = CellMonitor(interval_s=opts.interval_s, keep_timeline=opts.duration_s is not None)
    monitor.start()
    t0 = time.perf_counter()
    try:
        model = _load(cell, opts)
        row["load_s"] = round(time.perf_counter() - t0, 4)
        if model.backend.options:
            row["backend_options"] = dict(model.backend.options)
        first = feed.next()
        for _ in range(opts.warmup):
            _call(model, first)
        row["cold_start_s"] = round(time.perf_counter() - t0, 4)
        if data is not None:
            row.update(accuracy_pass(model, data, opts))
        row.update(speed_pass(model, feed, opts, monitor, tick))
        row["status"] = "ok"
    except Exception as e:  # one broken cell (corrupt file, runtime error) must not stop the matrix
        row.update({"status": "failed", "reason": _error_text(e)})
    finally:
        row.update(monitor.stop())
    if monitor.keep_timeline:
        row["timeline"] = monitor.timeline
    return row
