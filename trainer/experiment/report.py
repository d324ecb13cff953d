"""experiment.json, experiment.md and experiment.png, each written atomically (a reader never sees half).

The table names the one real test set every arm was scored on; the plot shows mAP per arm and how mAP50
moves with the share of real labels: label-free (0 %), hybrid-N (N %), real (100 %).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_bytes, atomic_write_text


def _f(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _test_set_line(doc: dict[str, Any]) -> str:
    t = doc["test_set"]
    head = (f"Real test set (the same held-out frames for every arm, never trained on): `{t['path']}`, "
            f"**{t['frames']} frames** ({t['frames_with_person']} with a person), **{t['boxes']} boxes**, "
            f"from `{t['source']}`")
    if not t.get("other_clip"):
        return f"{head}; split by time blocks in `{doc['split']}`."
    negs = f" and {t['negatives']} person-free frames from `{t['negatives_source']}`" if t.get("negatives") else ""
    return (f"{head}, a different clip than the training data (`{t['training_data']}`, split into train/val "
            f"by time blocks in `{doc['split']}`){negs}.")


def render_md(doc: dict[str, Any]) -> str:
    p = doc["pipeline"]["train"]
    lines = [
        f"# Experiment {doc['name']}: real labels vs label-free training",
        "",
        _test_set_line(doc),
        "",
        f"Every arm: detector {p['detector_epochs']} epochs at {p['detector_imgsz']} px, batch {p['batch']}, "
        f"seed {p['seed']} (budget `{doc['budget']}`). Scored by {doc['evaluation']}.",
        "",
        "| arm | training data | train images | mAP50 | × real | mAP50-95 | × real | P | R | count MAE | "
        "false alarms / h | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    real = next((a["metrics"] for a in doc["arms"] if a["arm"] == "real" and a["status"] == "ok"), None)

    def vs_real(m: dict[str, Any], key: str) -> str:
        """The arm's figure as a multiple of the real-label arm's: the targets are stated that way."""
        return f"{m[key] / real[key]:.2f}×" if real and real.get(key) else "-"

    failed = []
    for a in doc["arms"]:
        if a["status"] != "ok":
            failed.append(a)
            lines.append(f"| {a['arm']} | {a.get('description', '-')} | {a.get('train_images', '-')} | "
                         "failed | | | | | | | | |")
            continue
        m = a["metrics"]
        lines.append(f"| {a['arm']} | {a['description']} | {a['train_images']} | {_f(m['map50'])} | "
                     f"{vs_real(m, 'map50')} | {_f(m['map50_95'])} | {vs_real(m, 'map50_95')} | "
                     f"{_f(m['box_precision'])} | {_f(m['box_recall'])} | "
                     f"{_f(m.get('count_mae'), 2)} | {_f(m.get('false_alarms_per_hour'), 0)} | {a['seconds']:.0f} |")
    t = doc.get("teacher_model")
    if t:
        m = t["metrics"]
        lines.append(f"| teacher itself | `{Path(t['path']).name}` at {t['imgsz'][0]} px ({t['precision']}), not "
                     f"trained here | - | {_f(m['map50'])} | {vs_real(m, 'map50')} | {_f(m['map50_95'])} | "
                     f"{vs_real(m, 'map50_95')} | {_f(m['box_precision'])} | {_f(m['box_recall'])} | "
                     f"{_f(m.get('count_mae'), 2)} | {_f(m.get('false_alarms_per_hour'), 0)} | {t['seconds']:.0f} |")
    if not doc.get("complete"):
        lines += ["", "_The experiment is still running (or stopped): arms below the last row are missing._"]
    for a in failed:
        lines += ["", f"**{a['arm']} failed:** {a['error']} (traceback: `{a.get('traceback', '-')}`)"]
    notes = [f"- {a['arm']}: INT8 check: {a['int8_check']}" for a in doc["arms"] if a.get("int8_check")]
    for key, whose in (("pseudo_labels", "the label-free arms"), ("pseudo_labels_teacher", "the teacher arm")):
        q = doc.get(key)
        if not q:
            continue
        iou = "-" if q["mean_iou_matched"] is None else f"{q['mean_iou_matched']:.2f}"
        notes.append(f"- pseudo-labels of {whose}, scored against the real labels of the same "
                     f"{q['frames']} training frames ({q['pseudo_boxes']} pseudo / {q['real_boxes']} real boxes): "
                     f"P {q['precision']:.3f}, R {q['recall']:.3f}, F1 {q['f1']:.3f}, mean IoU of matches "
                     f"{iou}, count MAE {q['count_mae']:.2f}: the labeller's ceiling")
    for a in doc["arms"]:
        lines += _rounds_table(a)
    lines += ["", "Notes:", f"- {doc['shared']}.",
              "- seconds: the arm's stages (shared ones counted in every arm that uses them) + the verification.",
              "- P / R: box precision / recall at the verification's conf; count MAE: mean |predicted - true| "
              "persons per frame.",
              "- false alarms / h: the share of the test set's person-free frames with any box at that conf, per "
              "hour of person-free footage analysed at 5 frames/s (Frigate's default detect rate); - when the test "
              "set has no person-free frame.", *notes, ""]
    return "\n".join(lines)


def _rounds_table(arm: dict[str, Any]) -> list[str]:
    """One row per self-training round: its labels against the real labels of the training frames, and its
    detector on the real test set (the last round's is the arm's row above)."""
    rounds = arm.get("self_training")
    if not rounds:
        return []
    out = ["", f"Self-training rounds of arm {arm['arm']} (round 0: the first detector, on the scene's labels; "
               "labels scored against the real labels of the training frames, detector on the real test set):",
           "", "| round | epochs | labels P | labels R | labels mean IoU | detector mAP50 | detector mAP50-95 |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rounds:
        q, d = r.get("labels") or {}, r["detector"]
        out.append(f"| {r['round']} | {r['epochs']} | {_f(q.get('precision'))} | {_f(q.get('recall'))} | "
                   f"{_f(q.get('mean_iou_matched'), 2)} | {_f(d['map50'])} | {_f(d['map50_95'])} |")
    return out


def render_png(doc: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display; the report is a file
    import matplotlib.pyplot as plt

    ok = [a for a in doc["arms"] if a["status"] == "ok"]
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [a["arm"] for a in ok]
    x = range(len(ok))
    m50 = [a["metrics"]["map50"] for a in ok]
    m5095 = [a["metrics"]["map50_95"] for a in ok]
    for shift, vals, label in ((-0.2, m50, "mAP50"), (0.2, m5095, "mAP50-95")):
        drawn = bars.bar([i + shift for i in x], vals, 0.4, label=label)
        bars.bar_label(drawn, fmt="%.3f", fontsize=7)  # a 0.000 bar is invisible without its number
    bars.set_xticks(list(x), names, rotation=20)
    bars.set_ylim(0, 1)
    bars.set_ylabel("on the real test set")
    bars.set_title(f"{doc['name']}: {doc['test_set']['frames']} test frames, {doc['test_set']['boxes']} boxes")
    bars.legend()
    pts = sorted((a["real_label_percent"], a["metrics"]["map50"], a["arm"]) for a in ok
                 if a.get("real_label_percent") is not None)
    if pts:
        curve.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="mAP50")
        for pct, val, arm in pts:
            curve.annotate(arm, (pct, val), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for a in ok:
        if a["arm"] == "synthetic-only":
            curve.axhline(a["metrics"]["map50"], ls="--", color="grey", label="synthetic-only")
    curve.set_xlim(-5, 105)
    curve.set_ylim(0, 1)
    curve.set_xlabel("% of the real train frames used with their labels")
    curve.set_ylabel("mAP50")
    curve.set_title("label-free (0) / hybrid-N / real (100)")
    if curve.get_legend_handles_labels()[0]:  # arms off the curve only (generated-N, teacher): no legend
        curve.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(doc: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    files = {"experiment.json": folder / "experiment.json", "experiment.md": folder / "experiment.md",
             "experiment.png": folder / "experiment.png"}
    atomic_write_text(files["experiment.json"], json.dumps(doc, indent=1) + "\n")
    atomic_write_text(files["experiment.md"], render_md(doc))
    atomic_write_bytes(files["experiment.png"], render_png(doc))
    return files
