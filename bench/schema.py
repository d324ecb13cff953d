"""The `bench run` results file: a versioned JSON document, and the flat columns of its CSV.

Version history (bump SCHEMA_VERSION when a key changes meaning or disappears; adding keys is compatible):
- 1: the demo's bench stage (bench/evaluate.py): {"schema_version": 1, "rows": [...]}.
- 2: `bench run`: {"schema": "cctvkit.bench", "schema_version": 2, "host", "params", "data", "cells", "verdict"}.
  Each cell is one (model, backend, threads) with status "ok" or "failed" (+ "reason").
- 3: accuracy keys from edge/eval, the one evaluation core: precision_at_conf / recall_at_conf became
  box_precision / box_recall, with box_f1, count_mae and presence_*; the demo's bench stage writes this too.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import psutil

from bench.kernels import cpu_features, dist_version, runtime_kernels
from edge.errors import CctvkitError

SCHEMA = "cctvkit.bench"
SCHEMA_VERSION = 3

# (CSV/compare column, human header, format). Order = CSV column order; nested values are flattened.
COLUMNS: list[tuple[str, str, str]] = [
    ("id", "cell", "{}"),
    ("status", "status", "{}"),
    ("model", "model", "{}"),
    ("task", "task", "{}"),
    ("format", "format", "{}"),
    ("precision", "precision", "{}"),
    ("imgsz", "imgsz", "{}"),
    ("backend", "backend", "{}"),
    ("threads", "threads", "{}"),
    ("load_s", "load s", "{:.3f}"),
    ("cold_start_s", "cold start s", "{:.3f}"),
    ("fps_sustained", "FPS sustained", "{:.1f}"),
    ("fps_e2e", "FPS e2e", "{:.1f}"),
    ("fps_infer", "FPS infer", "{:.1f}"),
    ("latency_p50_ms", "e2e p50 ms", "{:.1f}"),
    ("latency_p95_ms", "e2e p95 ms", "{:.1f}"),
    ("latency_p99_ms", "e2e p99 ms", "{:.1f}"),
    ("infer_p50_ms", "infer p50 ms", "{:.1f}"),
    ("infer_p95_ms", "infer p95 ms", "{:.1f}"),
    ("infer_p99_ms", "infer p99 ms", "{:.1f}"),
    ("map50", "mAP50", "{:.3f}"),
    ("map50_95", "mAP50-95", "{:.3f}"),
    ("box_precision", "P@conf", "{:.3f}"),
    ("box_recall", "R@conf", "{:.3f}"),
    ("box_f1", "F1@conf", "{:.3f}"),
    ("count_mae", "count MAE", "{:.2f}"),
    ("presence_accuracy", "presence acc", "{:.3f}"),
    ("presence_f1", "presence F1", "{:.3f}"),
    ("process_cpu_percent", "process CPU %", "{:.0f}"),
    ("cpu_percent_per_core", "CPU % per core", "{}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("cell_rss_mb", "cell RSS MB", "{:.0f}"),
    ("temp_start_c", "temp start C", "{:.1f}"),
    ("temp_end_c", "temp end C", "{:.1f}"),
    ("arm_freq_mhz_end", "ARM MHz", "{:.0f}"),
    ("throttled_hex", "throttled", "{}"),
    ("speed_frames", "speed frames", "{}"),
    ("eval_frames", "eval frames", "{}"),
    ("reason", "reason", "{}"),
]

# Numbers where bigger is better (compare marks the direction of a change).
HIGHER_IS_BETTER = {"fps_sustained", "fps_e2e", "fps_infer", "map50", "map50_95", "box_precision",
                    "box_recall", "box_f1", "presence_accuracy", "presence_f1"}


def fmt_value(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return " ".join(fmt_value(v, "{:.0f}" if isinstance(v, float) else "{}") for v in value)
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def host_info() -> dict[str, Any]:
    """What the numbers were measured on: a Pi 5 and this workstation give very different figures."""
    model = None
    with contextlib.suppress(OSError):  # Raspberry Pi (and other device-tree boards) name themselves here
        model = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    runtimes = {d: dist_version(d) for d in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "ncnn",
                                          "opencv-python-headless", "numpy")}
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "board": model,
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "cpu_count": psutil.cpu_count(logical=True),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "runtimes": {k: v for k, v in runtimes.items() if v},
        "cpu": cpu_features(),
        "kernels": runtime_kernels(),
    }


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json of this schema version, written by `bench run` or the demo's bench stage; a one-line
    error for anything else, naming the version of an older results file."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CctvkitError("results file not found", path, "pass the results.json written by `bench run`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CctvkitError(f"not valid JSON ({e})", path, "pass the results.json written by `bench run`") from e
    if isinstance(doc, dict) and "schema" not in doc and "rows" in doc:  # schema 1 had no "schema" key
        raise CctvkitError(f"results schema version {doc.get('schema_version')} (the old demo bench stage) is "
                           f"not the supported {SCHEMA_VERSION}", path, "re-run `bench run` with this cctvkit")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise CctvkitError("not a `bench run` results file", path, "pass the results.json written by `bench run`")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise CctvkitError(
            f"results schema version {doc.get('schema_version')} is not the supported {SCHEMA_VERSION}",
            path, "re-run `bench run` with this cctvkit",
        )
    if not isinstance(doc.get("cells"), list):
        raise CctvkitError("results file has no 'cells' list", path, "re-run `bench run`")
    return doc


def flat_row(cell: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the COLUMNS keys of a cell, lists joined by spaces."""
    out = {}
    for key, _, _ in COLUMNS:
        v = cell.get(key)
        if key == "imgsz" and isinstance(v, list | tuple):
            v = "x".join(str(x) for x in v)
        elif isinstance(v, list | tuple):
            v = " ".join(str(round(x, 1)) if isinstance(x, float) else str(x) for x in v)
        out[key] = "" if v is None else v
    return out
