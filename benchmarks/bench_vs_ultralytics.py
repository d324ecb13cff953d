"""`bench run` plus Ultralytics' own predict on the same model files and frames: cctvkit's end-to-end FPS
over Ultralytics' (>1: cctvkit is faster), as a "cctvkit vs Ultralytics predict" table in results.json/.md.

    .venv/bin/python benchmarks/bench_vs_ultralytics.py --models runs/demo --threads 1,2 --frames 50

Takes exactly `bench run`'s arguments. A workstation comparison, so it lives here and not in bench/: bench
runs on the device, which has neither Ultralytics nor torch (tests/test_architecture.py), and imports only
edge (the lint-imports layers). Ultralytics comes configured offline from export/offline.py. Both sides
include letterbox, inference and decoding/NMS of one decoded frame; for the per-frame loop in detail (pre,
inference, post; matched ONNX Runtime sessions) see loop_vs_ultralytics.py.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any

import numpy as np

from bench.cells import ModelEntry
from bench.cli import main as bench_main

# Ultralytics reads these exports from a single file; its ncnn loader wants a *_ncnn_model folder.
FILE_FORMATS = ("onnx", "tflite")


def ultralytics_unavailable() -> str | None:
    try:
        found = importlib.util.find_spec("ultralytics") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else "ultralytics is not installed here (a workstation option)"


def _best_cctvkit(cells: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """This model's fastest successful cell (Ultralytics picks its own thread count)."""
    ok = [c for c in cells if c["model"] == model and c.get("status") == "ok" and c.get("fps_e2e")]
    return max(ok, key=lambda c: c["fps_e2e"]) if ok else None


def time_ultralytics(entry: ModelEntry, frames: list[np.ndarray], conf: float, warmup: int = 3) -> float:
    """Mean end-to-end FPS of YOLO(file).predict over the frames (one frame per call, like a camera)."""
    from export.offline import ultralytics_yolo  # configures Ultralytics offline before its import

    spec = entry.spec
    model = ultralytics_yolo()(str(entry.resolve()), task=spec.task)
    kw = {"imgsz": list(spec.imgsz), "verbose": False, "conf": conf}
    for f in frames[:warmup]:
        model.predict(f, **kw)
    t0 = time.perf_counter()
    for f in frames:
        model.predict(f, **kw)
    return len(frames) / (time.perf_counter() - t0)


def vs_ultralytics(models: list[ModelEntry], cells: list[dict[str, Any]], frames: list[np.ndarray],
                   conf: float) -> list[dict[str, Any]]:
    """One row per model: cctvkit FPS, Ultralytics FPS and the ratio, or a note why it was not timed."""
    why = ultralytics_unavailable()
    rows = []
    for entry in models:
        row: dict[str, Any] = {"model": entry.name, "format": entry.spec.format}
        mine = _best_cctvkit(cells, entry.name)
        if why is not None:
            rows.append({**row, "note": why})
            continue
        if entry.spec.format not in FILE_FORMATS:
            rows.append({**row, "note": f"Ultralytics reads {entry.spec.format} only as an export folder"})
            continue
        if mine is None:
            rows.append({**row, "note": "no successful cctvkit cell to compare with"})
            continue
        try:
            theirs = time_ultralytics(entry, frames, conf)
        except Exception as e:  # a file Ultralytics cannot read (no metadata...) is a note, not a failed run
            rows.append({**row, "note": f"Ultralytics failed: {type(e).__name__}: {e}".replace("\n", " ")[:200]})
            continue
        rows.append({**row, "cctvkit_cell": mine["id"], "cctvkit_fps": mine["fps_e2e"], "ultralytics_fps": theirs,
                     "ratio": mine["fps_e2e"] / theirs, "note": f"{len(frames)} frames"})
    return rows


def main(argv: list[str] | None = None) -> int:
    return bench_main(["run", *(sys.argv[1:] if argv is None else argv)], vs_ultralytics=vs_ultralytics)


if __name__ == "__main__":
    sys.exit(main())
