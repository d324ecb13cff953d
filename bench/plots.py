"""PNG plots of a results document: the FPS-vs-presence-F1 Pareto plot and, with --duration, the timelines.

matplotlib is imported inside the functions (Agg backend, no display): a Pi that only wants the JSON does
not pay for it, and a missing matplotlib skips the plots with a note instead of failing the run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.verdict import ACC_KEY, FPS_KEY, pareto_front, scored


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plots_available() -> str | None:
    """None when matplotlib imports, else why the plots are skipped."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    return None


def safe_name(cell_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", cell_id)


def pareto_plot(result: dict[str, Any], path: Path) -> Path:
    """One point per cell that ran with labelled frames: sustained FPS (log x) vs presence F1; the Pareto
    front as a step line; detectors and classifiers in different markers."""
    plt = pyplot()
    cells = scored(result["cells"])
    front = set(pareto_front(result["cells"]))
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    styles = {"detect": ("o", "tab:blue", "detector"), "classify": ("^", "tab:orange", "classifier")}
    for task, (marker, color, label) in styles.items():
        pts = [c for c in cells if c["task"] == task]
        if pts:
            ax.scatter([c[FPS_KEY] for c in pts], [c[ACC_KEY] for c in pts], marker=marker, color=color,
                       s=[70 if c["id"] in front else 35 for c in pts], label=label, zorder=3)
            for c in (c for c in pts if c["id"] in front):  # labelling every point makes a smudge
                ax.annotate(c["id"], (c[FPS_KEY], c[ACC_KEY]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
    fr = sorted((c for c in cells if c["id"] in front), key=lambda c: c[FPS_KEY])
    if len(fr) > 1:
        ax.step([c[FPS_KEY] for c in fr], [c[ACC_KEY] for c in fr], where="pre", color="gray", ls="--",
                lw=1, label="Pareto front", zorder=2)
    if cells and max(c[FPS_KEY] for c in cells) / max(1e-9, min(c[FPS_KEY] for c in cells)) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("sustained FPS (end-to-end)")
    ax.set_ylabel("presence F1 (person in frame)")
    low = min((c[ACC_KEY] for c in cells), default=0.0)
    ax.set_ylim(max(-0.02, low - 0.05), 1.01)
    host = result.get("host", {})
    ax.set_title(f"{result.get('run') or 'models'} on {host.get('board') or host.get('machine', '?')}: "
                 "detection vs classification", fontsize=10)
    ax.grid(True, alpha=0.3)
    if cells:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no cell ran with labelled frames", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_figure(fig, plt, path)


def timeline_plot(cell: dict[str, Any], path: Path) -> Path:
    """FPS, CPU temperature and ARM clock over a --duration cell; absent readings say so on their axis."""
    plt = pyplot()
    tl = cell.get("timeline") or []
    t = [p["t_s"] for p in tl]
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), dpi=110, sharex=True)
    panels = (("fps", "FPS", "tab:blue"), ("temp_c", "CPU temp (C)", "tab:red"),
              ("arm_freq_mhz", "ARM clock (MHz)", "tab:green"))
    for ax, (key, label, color) in zip(axes, panels, strict=True):
        vals = [p.get(key) for p in tl]
        pts = [(x, v) for x, v in zip(t, vals, strict=True) if v is not None]
        if pts:
            ax.plot([x for x, _ in pts], [v for _, v in pts], color=color, lw=1.2)
        else:
            ax.text(0.5, 0.5, "not available on this machine", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
        if key == "temp_c" and pts:
            ax.axhline(80, color="red", ls=":", lw=1)  # the Pi 5 firmware starts throttling at 80 C
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
    # Only the "now" bits (low nibble): the since-boot bits stay set for the whole run once tripped.
    throttled = [x for x, p in zip(t, tl, strict=True) if p.get("throttled") and int(p["throttled"]) & 0xF]
    if throttled:
        axes[0].scatter(throttled, [0] * len(throttled), color="black", marker="|", label="throttled")
        axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(f"{cell['id']}: {cell.get('fps_sustained') or 0:.1f} FPS sustained", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, plt, path)


def save_figure(fig: Any, plt: Any, path: Path) -> Path:
    """Temp file then rename: a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def write_plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    files = {"pareto.png": pareto_plot(result, out_dir / "pareto.png")}
    for cell in result["cells"]:
        if cell.get("timeline"):
            name = f"timeline-{safe_name(cell['id'])}.png"
            files[name] = timeline_plot(cell, out_dir / name)
    return files
