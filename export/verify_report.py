"""verify.json (the whole report, schema_version'ed) and verify.md (tables for people) of the export check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from edge.atomic import atomic_write_text


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _delta(row: dict[str, Any], which: str, key: str) -> str:
    d = row.get(which, {}).get(key)
    return "" if d is None else f"{round(d, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _latency(row: dict[str, Any], t: str) -> str:
    lat = row.get("latency", {}).get(t)
    if lat is None:
        return ""
    ratio = row.get("latency_vs_fp32", {}).get(t)
    return f"{lat['p50_ms']:.1f}" + (f" ({ratio:.2f}x)" if ratio is not None else "")


def _verdict(row: dict[str, Any]) -> str:
    if "error" in row:
        return "**FAILED** (does not run)"
    check = row.get("check")
    if check is None:
        return ""
    text = f"drop {check['counted_drop_points']:.1f} pts"
    if check["counted_drop_points"] != check["drop_points"]:
        text += f" (measured {check['drop_points']:.1f}, capped at the reference's skill above chance)"
    if check["failed"]:
        return f"**FAILED**: {text} > {check['limit_points']:.1f}"
    if check.get("beyond_limit"):
        return f"not gated (integer-only variant): {text} > {check['limit_points']:.1f}"
    return f"ok: {text}"


def _table(rows: list[dict[str, Any]], task: str, threads: list[int]) -> list[str]:
    ts = [str(t) for t in threads]
    if task == "detect":
        acc = ["mAP50", "mAP50-95", "P", "R", "Δ mAP50-95 vs PyTorch", "Δ vs same-format FP32"]
        key, keys = "map50_95", ("map50", "map50_95", "box_precision", "box_recall")
    else:
        acc = ["top-1 %", "Δ top-1 vs PyTorch", "Δ vs same-format FP32"]
        key, keys = "presence_accuracy", ("presence_accuracy",)
    head = [
        "model",
        "format",
        "precision",
        "backend",
        "size MB",
        *acc,
        *(f"p50 ms {t} thr" for t in ts),
        "INT8 check",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["task"] != task:
            continue
        if "error" in r:
            cells = [
                r["model"],
                r["format"],
                r["precision"],
                "",
                "",
                *([""] * len(acc)),
                *([""] * len(ts)),
                _verdict(r),
            ]
        else:
            cells = [
                r["model"],
                r["format"],
                r["precision"],
                r["backend"],
                f"{r['size_mb']:.2f}",
                *(_pct(r.get(k)) for k in keys),
                _delta(r, "delta_vs_pytorch", key),
                _delta(r, "delta_vs_fp32", key),
                *(_latency(r, t) for t in ts),
                _verdict(r),
            ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def verify_markdown(report: dict[str, Any]) -> str:
    data = report["data"]
    neg = data.get("negatives", {})
    lines = [f"# Export verification: run {report['run']}", ""]
    if report["failures"]:
        lines += ["**FAILED** -- " + "; ".join(report["failures"]), ""]
    else:
        lines += [
            f"Passed: no INT8 model lost more than {report['max_int8_drop_points']:.1f} points "
            "against the FP32 PyTorch model (integer-only variants are reported, not gated).",
            "",
        ]
    lines += [
        f"- Frames: {data['frames']} ({data['frames_with_person']} with a person, "
        f"{data.get('boxes', 0)} person "
        f"boxes): {data['description']}.",
        f"- Classifier negatives: {neg.get('frames', 0)} frames: {neg.get('description', 'none')}.",
        f"- Every exported model ran through the edge runtime (edge.detector: our preprocessing, runtime, "
        f"decoding); the PyTorch rows ran the trained .pt through Ultralytics predict on the same frames "
        f"(classifier: the frame squashed to imgsz first, as the device does). conf {report['conf']}, "
        f"iou {report['iou']}; all scored by edge/eval (mAP over the whole score curve, P/R at conf).",
        f"- Latency: {report['latency']}; {report['timing_frames']} frames per thread count; "
        "(Nx) = this model's latency over the same format's FP32.",
        "- Δ columns are in points (percentage points x 100 of the metric). "
        "The INT8 check counts a drop at most "
        "up to the reference's skill above chance level "
        f"(detector 0, classifier {100 * report['chance_level']['classify']:.1f}% = "
        "always the commoner answer). A LiteRT full-integer model (int8 in and out, for integer-only "
        "accelerators) is reported but never fails the export: its format's default INT8 model is the one "
        "that must keep the accuracy.",
        "",
    ]
    if data.get("pseudo_labels"):
        lines += [
            "> The labels are PSEUDO-labels made by the scene stage, not hand-checked: compare models "
            "with each other here, and pass `--labels DIR` for absolute accuracy.",
            "",
        ]
    for task, title in (("detect", "Detector"), ("classify", "Classifier")):
        if any(r["task"] == task for r in report["rows"]):
            lines += [f"## {title}", "", *_table(report["rows"], task, report["threads"]), ""]
    return "\n".join(lines)


def write_verify_reports(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write folder/verify.json and folder/verify.md atomically; returns {file name: path}."""
    folder = Path(folder)
    files = {"verify.json": folder / "verify.json", "verify.md": folder / "verify.md"}
    atomic_write_text(files["verify.json"], json.dumps(report, indent=2) + "\n")
    atomic_write_text(files["verify.md"], verify_markdown(report) + "\n")
    return files


def print_summary(report: dict[str, Any], md: Path) -> None:
    """One line per model on stderr (stdout stays free for machine-readable output)."""
    console = Console(stderr=True, highlight=False)
    for r in report["rows"]:
        if "error" in r:
            console.print(f"  {r['model']:<24} [red]does not run[/red]")
            continue
        key, label = report["metric"][r["task"]]
        delta = r.get("delta_vs_pytorch", {}).get(key)
        failed = r.get("check", {}).get("failed")
        flagged = not failed and r.get("check", {}).get("beyond_limit")  # integer-only: reported, not gated
        console.print(
            f"  {r['model']:<24} {label} {100 * r[key]:5.1f}"
            + (f"  ({round(delta, 1) + 0.0:+.1f} vs PyTorch)" if delta is not None else "")
            + ("  [red]FAILED[/red]" if failed else "")
            + ("  [yellow]beyond the limit (integer-only variant: reported, not gated)[/yellow]" if flagged else "")
        )
    # The run folder may still carry its temporary name here (the demo renames it when every stage is done).
    where = f"{md.parent.name}/{md.name} in the run directory"
    console.print(f"export verification {'passed' if report['passed'] else 'FAILED'}: {where}", soft_wrap=True)
