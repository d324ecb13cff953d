"""Bench results as files (JSON, CSV, Markdown, PNG) and as a terminal table; shared by `bench` and `trainer`.

Two result shapes: the demo's bench stage (schema 1, "rows") and `bench run` (schema 2, "cells", see
bench/schema.py). results_table and write_reports accept both, so the trainer's summary keeps working.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edge.atomic import atomic_write_text

COLUMNS = [  # (header, row key, format)
    ("model", "model", "{}"),
    ("backend", "backend", "{}"),
    ("FPS e2e", "fps_e2e", "{:.1f}"),
    ("FPS infer", "fps_infer", "{:.1f}"),
    ("p50 ms", "latency_p50_ms", "{:.1f}"),
    ("p95 ms", "latency_p95_ms", "{:.1f}"),
    ("mAP50", "map50", "{:.3f}"),
    ("mAP50-95", "map50_95", "{:.3f}"),
    ("presence F1", "presence_f1", "{:.3f}"),
    ("cls acc", "accuracy", "{:.3f}"),
]


def _cells(row: dict[str, Any]) -> list[str]:
    return [fmt.format(row[key]) if row.get(key) is not None else "-" for _, key, fmt in COLUMNS]


def results_table(result: dict[str, Any]) -> Table:
    if "cells" in result:
        from bench.report_v2 import matrix_table

        return matrix_table(result)
    table = Table(title=f"{result['run']}: {result['frames']} held-out frames; labels: {result['labels']}",
                  caption=f"latency: {result['latency']}; classifier negatives: {result['classifier_negatives']}")
    for header, _, _ in COLUMNS:
        text = header in ("model", "backend")
        table.add_column(header, justify="left" if text else "right", no_wrap=text)
    for row in result["rows"]:
        table.add_row(*_cells(row))
    return table


def write_reports(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    if "cells" in result:
        from bench.report_v2 import write_matrix_reports

        return write_matrix_reports(result, out_dir)
    json_path = atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    lines = [f"# bench: {result['run']}", "", f"- frames: {result['frames']} held-out video frames",
             f"- labels: {result['labels']}", f"- classifier negatives: {result['classifier_negatives']}",
             f"- latency: {result['latency']}", "",
             "| " + " | ".join(h for h, _, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in result["rows"]]
    md_path = atomic_write_text(out_dir / "results.md", "\n".join(lines) + "\n")
    return {"results.json": json_path, "results.md": md_path}


def stdout_console() -> Console:
    """Tables stay readable when stdout is a pipe or a log file (rich would squeeze them to 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=160)
