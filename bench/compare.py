"""`bench compare A.json B.json`: what changed between two `bench run` results (before/after, Pi vs Pi).

Cells are matched by id (model/backend/threads). For each measured number both values and the change are
shown; a change is marked better/worse by the direction that is good for that number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from bench.schema import COLUMNS, HIGHER_IS_BETTER, load_results

COMPARED = ("fps_sustained", "fps_e2e", "fps_infer", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
            "infer_p50_ms", "cold_start_s", "map50", "map50_95", "box_precision", "box_recall", "box_f1", "count_mae",
            "presence_accuracy", "presence_f1", "peak_rss_mb", "cell_rss_mb", "process_cpu_percent", "temp_end_c",
            "arm_freq_mhz_end")
LOWER_IS_BETTER = {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "infer_p50_ms", "cold_start_s",
                   "peak_rss_mb", "cell_rss_mb", "process_cpu_percent", "temp_end_c"}
_HEADERS = {k: h for k, h, _ in COLUMNS}


def _change(key: str, a: float, b: float) -> tuple[str, str]:
    """(text, verdict) of the change from a to b; verdict is 'better', 'worse' or ''."""
    d = b - a
    rel = f" ({d / a:+.0%})" if a else ""
    text = f"{d:+.3f}{rel}" if max(abs(a), abs(b)) < 10 else f"{d:+.1f}{rel}"
    if d == 0 or (key not in HIGHER_IS_BETTER and key not in LOWER_IS_BETTER):
        return text, ""
    good = d > 0 if key in HIGHER_IS_BETTER else d < 0
    return text, "better" if good else "worse"


def compare_results(a: dict[str, Any], b: dict[str, Any], min_rel: float = 0.0) -> dict[str, Any]:
    """Differences of b relative to a: changed numbers per common cell, status changes, cells only in one.
    Changes smaller than min_rel (relative) are left out."""
    ca = {c["id"]: c for c in a["cells"]}
    cb = {c["id"]: c for c in b["cells"]}
    changes, status = [], []
    for cid in [i for i in ca if i in cb]:
        x, y = ca[cid], cb[cid]
        if x.get("status") != y.get("status"):
            status.append({"id": cid, "a": x.get("status"), "b": y.get("status"),
                           "reason": y.get("reason") or x.get("reason")})
        for key in COMPARED:
            va, vb = x.get(key), y.get(key)
            if not isinstance(va, int | float) or not isinstance(vb, int | float) or va == vb:
                continue
            if va and abs(vb - va) / abs(va) < min_rel:
                continue
            text, verdict = _change(key, float(va), float(vb))
            changes.append({"id": cid, "key": key, "a": va, "b": vb, "change": text, "verdict": verdict})
    host_a, host_b = a.get("host", {}), b.get("host", {})
    host_diff = {k: (host_a.get(k), host_b.get(k)) for k in ("hostname", "board", "machine", "system", "runtimes")
                 if host_a.get(k) != host_b.get(k)}
    return {"changes": changes, "status": status, "only_a": [i for i in ca if i not in cb],
            "only_b": [i for i in cb if i not in ca], "host": host_diff,
            "data": (a.get("data"), b.get("data")) if a.get("data") != b.get("data") else None}


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.1f}" if isinstance(v, float) else str(v)


def compare_table(diff: dict[str, Any], name_a: str, name_b: str) -> Table:
    table = Table(title=f"bench compare: A = {name_a}, B = {name_b}")
    for h in ("cell", "metric", "A", "B", "B - A", ""):
        table.add_column(h, justify="left" if h in ("cell", "metric", "") else "right")
    for c in diff["changes"]:
        mark = {"better": "[green]better[/]", "worse": "[red]worse[/]"}.get(c["verdict"], "")
        table.add_row(c["id"], _HEADERS.get(c["key"], c["key"]), _num(c["a"]), _num(c["b"]), c["change"], mark)
    return table


def compare_lines(diff: dict[str, Any]) -> list[str]:
    """What the table does not show: host and data changes, status changes, unmatched cells."""
    lines = []
    for k, (x, y) in diff["host"].items():
        lines.append(f"host {k}: A {x} / B {y}")
    if diff["data"] is not None:
        lines.append("the accuracy frames differ: accuracy numbers are not comparable")
    for s in diff["status"]:
        lines.append(f"{s['id']}: {s['a']} -> {s['b']}" + (f" ({s['reason']})" if s.get("reason") else ""))
    lines += [f"only in A: {i}" for i in diff["only_a"]] + [f"only in B: {i}" for i in diff["only_b"]]
    if not diff["changes"] and not lines:
        lines.append("no differences")
    return lines


def compare_files(path_a: str | Path, path_b: str | Path, min_rel: float = 0.0) -> tuple[dict[str, Any], Table]:
    diff = compare_results(load_results(path_a), load_results(path_b), min_rel)
    return diff, compare_table(diff, str(path_a), str(path_b))
