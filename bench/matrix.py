"""The `bench run` matrix: models x backends (each that reads the model's format) x thread counts.

Precision and input size are properties of each exported model file, so they vary with the models of the
run (fp32/int8, 320/640...); --precision and --imgsz narrow the matrix to some of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.cells import Cell, CellOptions, ModelEntry, run_cell
from bench.feeds import Feed
from bench.schema import SCHEMA, SCHEMA_VERSION, host_info
from bench.sysmon import probe_status
from bench.verdict import verdict
from edge.backends import BACKENDS
from edge.errors import CctvkitError
from edge.eval import LabelledSet
from edge.manifest import Manifest

MODEL_SUFFIXES = (".onnx", ".tflite")


def _manifest_entries(manifest: Manifest) -> list[ModelEntry]:
    def resolver(name: str):  # bind the name now: a lambda in the loop would see the last one
        return lambda: manifest.model_path(name)  # checks the sha256: a changed file fails its cells

    return [ModelEntry(name, spec, resolver(name), str(manifest.path)) for name, spec in manifest.models().items()]


def _file_entry(path: Path, metadata: str | None) -> ModelEntry:
    from edge.backends import spec_from_onnx, spec_from_tflite

    suffix = path.suffix.lower()
    spec = spec_from_onnx(path) if suffix == ".onnx" else spec_from_tflite(path, metadata)
    return ModelEntry(path.stem, spec, lambda: path, str(path))


def load_models(paths: list[str], metadata: str | None = None) -> tuple[list[ModelEntry], Manifest | None]:
    """--models: run manifests (file or run folder) and/or bare .onnx/.tflite files (spec read from the file)."""
    entries: list[ModelEntry] = []
    manifest = None
    for text in paths:
        p = Path(text)
        if p.suffix.lower() in MODEL_SUFFIXES:
            entries.append(_file_entry(p, metadata))
        elif p.is_dir() or p.suffix.lower() == ".json":
            m = Manifest.load(p)
            manifest = manifest or m
            entries += _manifest_entries(m)
        else:
            raise CctvkitError("not a run manifest or a model file", p,
                               f"pass runs/<name>/manifest.json or a {' / '.join(MODEL_SUFFIXES)} file")
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CctvkitError(f"two models are named {', '.join(dupes)}", fix="pass each model once")
    if not entries:
        raise CctvkitError("no models to bench", paths[0] if paths else None, "export models into the run first")
    return entries, manifest


def parse_list(text: str | None, kind: type = str, what: str = "value") -> list[Any] | None:
    if text is None:
        return None
    try:
        items = [kind(t.strip()) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise CctvkitError(f"cannot read {what} list '{text}'", fix=f"give comma-separated {what}s, e.g. 1,2,4") from None
    if not items:
        raise CctvkitError(f"empty {what} list", fix=f"give comma-separated {what}s")
    return items


def check_backends(names: list[str] | None) -> list[str]:
    """The backends asked for (all registered ones by default); unknown names are a one-line error."""
    if names is None:
        return list(BACKENDS)
    for n in names:
        if n not in BACKENDS:
            raise CctvkitError(f"unknown backend '{n}'", fix=f"choose from: {', '.join(BACKENDS)}")
    return names


def build_cells(models: list[ModelEntry], backends: list[str], threads: list[int],
                precisions: list[str] | None = None, imgsz: list[int] | None = None) -> list[Cell]:
    if any(t < 1 for t in threads):
        raise CctvkitError(f"thread counts must be >= 1, got {threads}", fix="pass e.g. --threads 1,2,4")
    cells = []
    for m in models:
        s = m.spec
        if precisions is not None and s.precision not in precisions:
            continue
        if imgsz is not None and max(s.imgsz) not in imgsz:
            continue
        readers = [b for b in backends if s.format in BACKENDS[b].formats]
        if not readers:
            able = [n for n, c in BACKENDS.items() if s.format in c.formats]
            why = (f"no selected backend ({', '.join(backends)}) reads {s.format} models"
                   f" -- add --backends {' or '.join(able) or '(none registered)'}")
            cells.append(Cell(m, "-", threads[0], unavailable=why))
            continue
        for b in readers:
            missing = BACKENDS[b].unavailable()
            for t in threads:
                cells.append(Cell(m, b, t, unavailable=None if missing is None else f"backend '{b}' is {missing}"))
    if not cells:
        raise CctvkitError("the filters leave no model to bench", fix="loosen --precision / --imgsz / --only")
    return cells


def run_matrix(cells: list[Cell], data: LabelledSet | None, feed: Feed, opts: CellOptions,
               progress: bool = True) -> list[dict[str, Any]]:
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    duration = opts.duration_s
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("matrix", total=len(cells))
        # The speed pass of the cell running now: frames, or seconds with --duration.
        inner = bar.add_task("", total=duration if duration is not None else opts.speed_frames, visible=False)

        def tick(frames: int, seconds: float) -> None:
            bar.update(inner, completed=min(seconds, duration) if duration is not None else frames)

        for cell in cells:
            bar.update(task, description=f"matrix {cell.id:<40}")
            bar.reset(inner, description="  speed pass (s)" if duration else "  speed pass (frames)", visible=True)
            rows.append(run_cell(cell, data, feed, opts, tick=tick))
            bar.advance(task)
        bar.update(inner, visible=False)
    return rows


def results_doc(rows: list[dict[str, Any]], *, manifest: Manifest | None, data: LabelledSet | None,
                feed: Feed, opts: CellOptions, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": manifest.data.get("run") if manifest is not None else None,
        "host": host_info(),
        "probes_unavailable": {k: v for k, v in probe_status().items() if v},
        "params": {**params, "options": asdict(opts)},
        "data": data.summary() if data is not None else None,
        "speed_feed": feed.description,
        "latency": "end-to-end = preprocess + inference + postprocess on a decoded frame; infer = runtime only; "
                   "sustained FPS = frames / wall time of the speed pass including waiting for the next frame",
        "cells": rows,
        "verdict": verdict(rows),
    }
