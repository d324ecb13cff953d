"""--vs-ultralytics: time Ultralytics' own predict on the same model file and the same frames.

Ultralytics (and torch under it) is imported only inside _yolo_class, through trainer.yolo.offline, and only
when the user asks: the device install has neither, and bench/ must import without them
(tests/test_architecture.py).
The ratio is cctvkit's end-to-end FPS over Ultralytics' (>1: cctvkit is faster); both include letterbox,
inference and decoding/NMS of one decoded frame.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from bench.cells import ModelEntry

# Ultralytics reads these exports from a single file; its ncnn loader wants a *_ncnn_model folder.
FILE_FORMATS = ("onnx", "tflite")


def ultralytics_unavailable() -> str | None:
    try:
        found = importlib.util.find_spec("ultralytics") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else "ultralytics is not installed here (a workstation option)"


def _yolo_class() -> Any:
    # trainer ships in the same distribution, so its offline setup (no network, settings in our cache) is
    # always there; it imports Ultralytics itself, only now.
    from trainer.yolo.offline import ultralytics_yolo

    return ultralytics_yolo()


def _best_cctvkit(cells: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """This model's fastest successful cell (Ultralytics picks its own thread count)."""
    ok = [c for c in cells if c["model"] == model and c.get("status") == "ok" and c.get("fps_e2e")]
    return max(ok, key=lambda c: c["fps_e2e"]) if ok else None


def time_ultralytics(entry: ModelEntry, frames: list[np.ndarray], conf: float, warmup: int = 3) -> float:
    """Mean end-to-end FPS of YOLO(file).predict over the frames (one frame per call, like a camera)."""
    YOLO = _yolo_class()
    spec = entry.spec
    model = YOLO(str(entry.resolve()), task=spec.task)
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
