"""Bench results (bench/schema.py) as results.json, results.csv, results.md, PNG plots and a terminal table;
shared by `bench run` and the demo's bench stage."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.kernels import kernels_line
from bench.schema import COLUMNS, flat_row, fmt_value
from edge.atomic import atomic_write_text
from edge.errors import CctvkitError
from edge.eval import EVAL_CONF

# The columns of the terminal table (narrow) and of the Markdown; the CSV and JSON have all of them.
TERMINAL_KEYS = ("id", "cold_start_s", "fps_sustained", "latency_p50_ms", "latency_p95_ms", "infer_p50_ms",
                 "map50", "map50_95", "box_precision", "box_recall", "box_f1", "count_mae", "presence_f1", "process_cpu_percent",
                 "peak_rss_mb")
TABLE_KEYS = ("id", "precision", "imgsz", "cold_start_s", "fps_sustained", "latency_p50_ms", "latency_p95_ms",
              "latency_p99_ms", "infer_p50_ms", "map50", "map50_95", "box_precision", "box_recall", "box_f1", "count_mae",
              "presence_accuracy", "presence_f1", "process_cpu_percent", "peak_rss_mb", "cell_rss_mb",
              "temp_start_c", "temp_end_c", "arm_freq_mhz_end", "throttled_hex")
_SPEC = {k: (h, f) for k, h, f in COLUMNS}


def cell_text(cell: dict[str, Any], key: str) -> str:
    if cell.get("status") != "ok" and key not in ("id", "precision", "imgsz"):
        return "FAILED" if key == "fps_sustained" else "-"
    if key == "imgsz" and isinstance(cell.get(key), list):
        return "x".join(str(v) for v in cell[key])
    return fmt_value(cell.get(key), _SPEC[key][1])


def matrix_table(result: dict[str, Any]) -> Table:
    data = result.get("data") or {}
    title = (f"{result.get('run') or 'models'}: {len(result['cells'])} cells; accuracy on "
             f"{data.get('frames', 0)} frames ({data.get('frames_with_person', 0)} with a person)")
    table = Table(title=title, caption=result.get("latency"))
    for key in TERMINAL_KEYS:
        table.add_column(_SPEC[key][0], justify="left" if key == "id" else "right", no_wrap=key == "id")
    for cell in result["cells"]:
        table.add_row(*[cell_text(cell, k) for k in TERMINAL_KEYS])
    return table


def to_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[k for k, _, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    for cell in result["cells"]:
        writer.writerow(flat_row(cell))
    return buf.getvalue()


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _pick(p: dict[str, Any] | None) -> str:
    return "-" if p is None else f"{p['id']} (F1 {p['presence_f1']:.3f}, {p['fps']:.1f} FPS)"


def to_markdown(result: dict[str, Any], plots: list[str]) -> str:
    host, data, params = result.get("host", {}), result.get("data") or {}, result.get("params", {})
    lines = [f"# bench run: {result.get('run') or 'models'}", "",
             f"- measured {result.get('created')} on {host.get('board') or host.get('machine')} "
             f"({host.get('system')}, {host.get('cpu_count')} CPUs, {host.get('memory_mb')} MB); "
             f"runtimes: {', '.join(f'{k} {v}' for k, v in host.get('runtimes', {}).items())}",
             f"- kernels: {kernels_line(host.get('cpu') or {}, host.get('kernels') or {})}",
             f"- accuracy frames: {data.get('frames', 0)} ({data.get('frames_with_person', 0)} with a person, "
             f"{data.get('frames_without_person', 0)} without); labels: {data.get('description', 'none')}",
             f"- no-person frames: {(data.get('negatives') or {}).get('description') or 'only those in the labelled set'}",
             f"- speed frames: {result.get('speed_feed')}",
             f"- operating threshold: detector conf {params.get('options', {}).get('conf')}, classifier "
             f"{params.get('options', {}).get('threshold')}; mAP at conf >= {EVAL_CONF}",
             f"- latency: {result.get('latency')}"]
    for name, why in (result.get("probes_unavailable") or {}).items():
        lines.append(f"- {name}: not measured ({why})")
    lines += ["", "## Cells", ""]
    lines += md_table([_SPEC[k][0] for k in TABLE_KEYS],
                       [[cell_text(c, k) for k in TABLE_KEYS] for c in result["cells"]])
    opts = [f"`{c['id']}` {', '.join(f'{k} {v}' for k, v in c['backend_options'].items())}"
            for c in result["cells"] if c.get("backend_options")]
    if opts:
        lines += ["", f"Backend options: {'; '.join(opts)}"]
    failed = [c for c in result["cells"] if c.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed cells", ""] + [f"- `{c['id']}`: {c.get('reason')}" for c in failed]
    v = result.get("verdict") or {}
    lines += ["", "## Detection vs classification", "",
              "Presence F1 = person / no person per frame, on the same frames for every model; a budget is the "
              "frame rate the camera needs (sustained FPS must reach it).", ""]
    lines += [f"- {s}" for s in v.get("summary", [])]
    if v.get("budgets"):
        lines += [""] + md_table(["FPS budget", "best detector", "best classifier", "winner"],
                                  [[f"{r['budget_fps']:g}", _pick(r["detector"]), _pick(r["classifier"]),
                                    r["winner"] or "none fits"] for r in v["budgets"]])
    lines += ["", f"Pareto front (FPS vs presence F1): {', '.join(v.get('pareto', [])) or '-'}", ""]
    lines += [f"![{p}]({p})" for p in plots]
    ul = result.get("vs_ultralytics")
    if ul:
        lines += ["", "## cctvkit vs Ultralytics predict (same model file and frames)", ""]
        lines += md_table(["model", "cctvkit FPS e2e", "Ultralytics FPS", "ratio", "note"],
                           [[r["model"], fmt_value(r.get("cctvkit_fps"), "{:.1f}"),
                             fmt_value(r.get("ultralytics_fps"), "{:.1f}"), fmt_value(r.get("ratio"), "{:.2f}x"),
                             r.get("note", "")] for r in ul])
    return "\n".join(lines) + "\n"


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the results folder up front: a matrix that ran for an hour must not fail on writing."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CctvkitError(f"cannot create the results folder ({e.strerror})", out_dir, "pass --out DIR") from e
    if not os.access(out_dir, os.W_OK):
        raise CctvkitError("the results folder is not writable", out_dir, "pass --out DIR")
    return out_dir


def write_matrix_reports(result: dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    out_dir = prepare_out_dir(out_dir)
    files: dict[str, Path] = {}
    if plots:
        from bench.plots import plots_available, write_plots

        why = plots_available()
        if why is None:
            files.update(write_plots(result, out_dir))
        else:
            result.setdefault("notes", []).append(f"plots skipped: {why}")
    files["results.json"] = atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    files["results.csv"] = atomic_write_text(out_dir / "results.csv", to_csv(result))
    md = to_markdown(result, [n for n in files if n.endswith(".png")])
    files["results.md"] = atomic_write_text(out_dir / "results.md", md)
    return files


def stdout_console() -> Console:
    """Tables stay readable when stdout is a pipe or a log file (rich would squeeze them to 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def holdout_table(result: dict[str, Any]) -> Table:
    """The demo's summary: speed and accuracy per model, the labels each figure was scored on named."""
    data = result.get("data") or {}
    real = bool(result.get("real_labels"))
    title = (f"{result.get('run')}: {data.get('frames', 0)} held-out frames, {data.get('boxes', 0)} boxes; "
             + ("REAL labels" if real else "no real labels given (--labels DIR): PSEUDO-labels only, "
                "agreement with the person finder, not accuracy"))
    table = Table(title=title, caption=f"scored on: {data.get('description')}")
    heads = ["model", "FPS", "p50 ms", "mAP50", "mAP50-95", "P", "R", "count MAE", "presence F1"]
    if real:
        heads += ["pseudo mAP50", "pseudo mAP50-95"]
    for h in heads:
        table.add_column(h, justify="left" if h == "model" else "right", no_wrap=h == "model")
    keys = ["fps_sustained", "latency_p50_ms", "map50", "map50_95", "box_precision", "box_recall", "count_mae",
            "presence_f1"] + (["pseudo_map50", "pseudo_map50_95"] if real else [])
    for cell in result["cells"]:
        table.add_row(cell["id"], *[cell_text(cell, k) if k in _SPEC else fmt_value(cell.get(k), "{:.3f}")
                                    for k in keys])
    return table
