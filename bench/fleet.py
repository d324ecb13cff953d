"""`bench fleet DIR`: the `bench run` results of many hosts in one report (fleet.md, .csv, .json, .png).

DIR holds one folder per host, DIR/<host>/results.json, each copied from that host's `bench run --out`.
A host folder without results.json is reported as "no results" rather than left out: a fleet report that
silently shrinks when one Pi failed to bench would read as a healthy fleet.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.report import cell_text, md_table, prepare_out_dir
from bench.schema import COLUMNS, flat_row, load_results
from edge.atomic import atomic_write_text
from edge.errors import CctvkitError
from edge.metrics.system import throttle_flags

FLEET_SCHEMA = "cctvkit.bench.fleet"
FLEET_SCHEMA_VERSION = 1
NO_RESULTS = "no results"
# The per-cell columns of the Markdown and terminal tables (headers from bench/schema.py COLUMNS).
CELL_KEYS = ("fps_sustained", "latency_p50_ms", "latency_p95_ms", "temp_start_c", "temp_end_c", "map50")
_HEAD = {k: h for k, h, _ in COLUMNS}
FIX = "copy each host's `bench run` results.json to DIR/<host>/results.json"


def labels_text(data: dict[str, Any] | None) -> str:
    """What a host's mAP50 was scored on, short: pseudo-labels agree with the person finder, they are not
    accuracy, so the table must not let them pass for real labels."""
    if not data:
        return "not measured"
    if data.get("pseudo_labels"):
        return "PSEUDO (run holdout)"
    path = data.get("path")
    return f"real ({Path(path).name})" if path else "real"


def _flags(cell: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """(flags set now, flags set since boot) of a cell's throttled_hex; None where it was not read."""
    raw = cell.get("throttled_hex")
    if raw is None:
        return None
    try:
        flags = throttle_flags(int(str(raw), 0))
    except ValueError:
        return None
    return ([f for (f, when), on in flags.items() if on and when == "now"],
            [f for (f, when), on in flags.items() if on and when == "since_boot"])


def throttle_text(cell: dict[str, Any]) -> str:
    """throttled_hex decoded into flag names, the ones set at the cell's end first; '-' where vcgencmd was
    not there (not a Pi), so "not measured" never reads as "not throttled"."""
    raw, flags = cell.get("throttled_hex"), _flags(cell)
    if flags is None:
        return "-" if raw is None else str(raw)
    now, boot = flags
    if not now and not boot:
        return f"{raw} none"
    parts = [", ".join(now) + " now"] if now else []
    parts += [", ".join(boot) + " since boot"] if boot else []
    return f"{raw} {'; '.join(parts)}"


def throttled_now(cell: dict[str, Any]) -> list[str]:
    """The flags set at the cell's end (the low nibble; the since-boot bits stay set once tripped)."""
    flags = _flags(cell)
    return flags[0] if flags else []


def _host_folders(fleet_dir: Path, out_dir: Path) -> list[Path]:
    if not fleet_dir.is_dir():
        raise CctvkitError("fleet folder not found" if not fleet_dir.exists() else "not a folder", fleet_dir,
                           f"pass the folder holding <host>/results.json ({FIX})")
    out = out_dir.resolve()
    # Hidden folders are atomic-write leftovers; an --out folder inside DIR is this report, not a host.
    hosts = sorted(p for p in fleet_dir.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.resolve() != out)
    if not any((p / "results.json").is_file() for p in hosts):
        raise CctvkitError("no host folder with a results.json", fleet_dir, FIX)
    return hosts


def _load_host(path: Path) -> dict[str, Any]:
    try:
        path.read_bytes()  # permission problems named as such, not as "not valid JSON"
    except OSError as e:
        raise CctvkitError(f"cannot read ({e.strerror or e})", path,
                           "make it readable or copy it again from the host") from e
    return load_results(path)  # one-line errors for non-JSON and other schemas, naming the file


def _cell_row(host: str, doc: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    h = doc.get("host") or {}
    return {"host": host, "hostname": h.get("hostname"), "board": h.get("board") or h.get("machine"),
            "labels": labels_text(doc.get("data")), "throttle": throttle_text(cell),
            **{k: cell.get(k) for k, _, _ in COLUMNS}}


def _summary(host: str, doc: dict[str, Any] | None, folder: Path) -> dict[str, Any]:
    if doc is None:
        return {"host": host, "status": NO_RESULTS, "results": None,
                "line": f"{host}: {NO_RESULTS} (no {folder / 'results.json'}) -- run `bench run` there and copy "
                        "its results.json"}
    cells = doc["cells"]
    ok = [c for c in cells if c.get("status") == "ok"]
    best = max(ok, key=lambda c: c.get("fps_sustained") or 0.0, default=None)
    temps = [c["temp_end_c"] for c in cells if isinstance(c.get("temp_end_c"), int | float)]
    throttled = [c["id"] for c in cells if throttled_now(c)]
    h, data = doc.get("host") or {}, doc.get("data") or {}
    parts = [f"{len(cells)} cells ({len(ok)} ok, {len(cells) - len(ok)} failed)",
             f"best {best['fps_sustained']:.1f} FPS ({best['id']})" if best and best.get("fps_sustained") else
             "no cell ran",
             f"end temp max {max(temps):.1f} C" if temps else "temperature not measured",
             f"throttled during {', '.join(throttled)}" if throttled else "not throttled",
             f"labels: {data.get('description') or 'none (accuracy not measured)'}"]
    board = h.get("board") or h.get("machine") or "?"
    return {"host": host, "status": "ok", "results": str(folder / "results.json"), "hostname": h.get("hostname"),
            "board": board, "created": doc.get("created"), "cells": len(cells), "cells_ok": len(ok),
            "best_fps": best.get("fps_sustained") if best else None, "best_cell": best["id"] if best else None,
            "temp_end_max_c": max(temps) if temps else None, "throttled_cells": throttled,
            "line": f"{host} ({board}, measured {doc.get('created')}): " + "; ".join(parts)}


def build_fleet(fleet_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """The fleet document: one summary per host folder and one row per host x cell ("no results" rows for
    host folders without a results.json)."""
    fleet_dir = Path(fleet_dir)
    hosts, rows = [], []
    for folder in _host_folders(fleet_dir, Path(out_dir) if out_dir is not None else fleet_dir):
        path = folder / "results.json"
        doc = _load_host(path) if path.is_file() else None
        hosts.append(_summary(folder.name, doc, folder))
        if doc is None:
            rows.append({"host": folder.name, "id": None, "status": NO_RESULTS,
                         "reason": f"no results.json in {folder}"})
            continue
        rows += [_cell_row(folder.name, doc, c) for c in doc["cells"]]
        if not doc["cells"]:
            rows.append({"host": folder.name, "id": None, "status": "no cells", "reason": f"{path} has no cells"})
    return {"schema": FLEET_SCHEMA, "schema_version": FLEET_SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dir": str(fleet_dir), "hosts": hosts, "rows": rows}


def _row_texts(row: dict[str, Any]) -> list[str]:
    """host, cell, the CELL_KEYS, throttle, labels: as bench run's own tables format them."""
    if row.get("id") is None:  # a host without results or without cells
        return [row["host"], row["status"], *["-"] * len(CELL_KEYS), "-", "-"]
    return [row["host"], row["id"], *[cell_text(row, k) for k in CELL_KEYS],
            row["throttle"] if row.get("status") == "ok" else "-", row["labels"]]


def _headers() -> list[str]:
    return ["host", _HEAD["id"], *[_HEAD[k] for k in CELL_KEYS], "throttle flags", "mAP labels"]


def to_markdown(fleet: dict[str, Any], plot: str | None) -> str:
    lines = [f"# bench fleet: {len(fleet['hosts'])} hosts in {fleet['dir']}", "",
             f"- made {fleet['created']} from each host's `bench run` results.json", "", "## Hosts", ""]
    lines += [f"- {h['line']}" for h in fleet["hosts"]]
    lines += ["", "## Cells", ""] + md_table(_headers(), [_row_texts(r) for r in fleet["rows"]])
    if plot:
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"


def to_csv(fleet: dict[str, Any]) -> str:
    """Every COLUMNS key of bench run's own CSV, after the host columns."""
    head = ["host", "hostname", "board", "labels", "throttle"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=head + [k for k, _, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in fleet["rows"]:
        writer.writerow({**{k: row.get(k) or "" for k in head}, **flat_row(row)})
    return buf.getvalue()


def fleet_table(fleet: dict[str, Any]) -> Table:
    table = Table(title=f"bench fleet: {len(fleet['hosts'])} hosts")
    for h in _headers():
        table.add_column(h, justify="left" if h in ("host", "cell", "throttle flags", "mAP labels") else "right")
    for row in fleet["rows"]:
        table.add_row(*_row_texts(row))
    return table


def _cell_value(fleet: dict[str, Any], host: str, cid: str, key: str) -> float | None:
    """A host's figure for one cell id; None where the cell failed, did not run there or lacks the figure."""
    return next((r.get(key) for r in fleet["rows"] if r["host"] == host and r.get("id") == cid
                 and r.get("status") == "ok"), None)


def _grouped_bars(ax: Any, cmap: Any, fleet: dict[str, Any], ids: list[str], key: str,
                  whisker: str | None = None) -> None:
    """One bar per cell id at each host (grouped by host), whisker up to `whisker` (e.g. p95 above p50);
    a host without results says so where its bars would be."""
    hosts = [h["host"] for h in fleet["hosts"]]
    width = 0.8 / max(1, len(ids))
    for j, cid in enumerate(ids):
        vals = [_cell_value(fleet, h, cid, key) for h in hosts]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(hosts))]
        ax.bar(xs, [v or 0.0 for v in vals], width, label=cid, color=cmap(j % 20))
        if whisker:
            tops = [_cell_value(fleet, h, cid, whisker) for h in hosts]
            pts = [(x, v, t) for x, v, t in zip(xs, vals, tops, strict=True) if v is not None and t is not None]
            if pts:
                ax.errorbar([x for x, _, _ in pts], [v for _, v, _ in pts],
                            yerr=[[0.0] * len(pts), [max(0.0, t - v) for _, v, t in pts]],
                            fmt="none", ecolor="black", capsize=2, lw=0.8)
    for i, h in enumerate(fleet["hosts"]):
        if h["status"] != "ok":
            ax.text(i, 0, NO_RESULTS, ha="center", va="bottom", color="gray", rotation=90)
    ax.set_xticks(range(len(hosts)), hosts)
    ax.grid(True, axis="y", alpha=0.3)


def fleet_plot(fleet: dict[str, Any], path: Path) -> Path:
    """Top: sustained FPS per host, one bar per cell id (grouped by host). Middle: end-to-end latency p50
    per host and cell, the whisker up to p95. Bottom: the hottest cell-end temperature of each host, red
    where a cell ended throttled, with the flags written on the bar."""
    from bench.plots import pyplot, save_figure

    plt = pyplot()
    hosts = [h["host"] for h in fleet["hosts"]]
    ids = list(dict.fromkeys(r["id"] for r in fleet["rows"] if r.get("id") is not None))
    fig, (ax, lx, bx) = plt.subplots(3, 1, figsize=(max(8, 1.6 * len(hosts) + 4), 11), dpi=110)
    cmap = plt.get_cmap("tab10" if len(ids) <= 10 else "tab20")
    _grouped_bars(ax, cmap, fleet, ids, "fps_sustained")
    ax.set_ylabel("sustained FPS (end-to-end)")
    ax.set_title("FPS per host and cell (a missing bar: the cell failed or did not run there)", fontsize=10)
    if ids:
        ax.legend(fontsize=7, ncol=max(1, len(ids) // 8 + 1))
    _grouped_bars(lx, cmap, fleet, ids, "latency_p50_ms", whisker="latency_p95_ms")
    lx.set_ylabel("end-to-end latency (ms)")
    lx.set_title("latency per host and cell: bar p50, whisker up to p95", fontsize=10)
    for i, h in enumerate(fleet["hosts"]):
        temp = h.get("temp_end_max_c")
        hot = bool(h.get("throttled_cells"))
        if temp is None:
            bx.text(i, 1, "no temperature" if h["status"] == "ok" else NO_RESULTS, ha="center", va="bottom",
                    color="gray", rotation=90)
            continue
        bx.bar(i, temp, 0.6, color="tab:red" if hot else "tab:blue", hatch="//" if hot else None)
        flags = {f for r in fleet["rows"] if r["host"] == h["host"] for f in throttled_now(r)}
        bx.text(i, temp, f"{temp:.1f} C" + ("\nTHROTTLED\n" + "\n".join(sorted(flags)) if hot else ""),
                ha="center", va="bottom", fontsize=7)
    bx.axhline(80, color="red", ls=":", lw=1, label="80 C: the Pi 5 firmware starts throttling")
    bx.set_xticks(range(len(hosts)), hosts)
    bx.set_xlim(-0.6, len(hosts) - 0.4)
    temps = [h["temp_end_max_c"] for h in fleet["hosts"] if h.get("temp_end_max_c") is not None]
    bx.set_ylim(0, max([100.0, *temps]) + 15)  # room for the flag names above the bars
    bx.set_ylabel("CPU temp at cell end (C, max)")
    bx.set_title("temperature and throttling per host (red, hatched: a cell ended throttled)", fontsize=10)
    bx.legend(fontsize=7, loc="upper right")
    bx.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, plt, path)


def write_fleet(fleet: dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    out_dir = prepare_out_dir(out_dir)
    files: dict[str, Path] = {}
    if plots:
        from bench.plots import plots_available

        why = plots_available()
        if why is None:
            files["fleet.png"] = fleet_plot(fleet, out_dir / "fleet.png")
        else:
            fleet.setdefault("notes", []).append(f"plot skipped: {why}")
    files["fleet.json"] = atomic_write_text(out_dir / "fleet.json", json.dumps(fleet, indent=2) + "\n")
    files["fleet.csv"] = atomic_write_text(out_dir / "fleet.csv", to_csv(fleet))
    files["fleet.md"] = atomic_write_text(out_dir / "fleet.md", to_markdown(fleet, "fleet.png" if plots and
                                                                            "fleet.png" in files else None))
    return files
