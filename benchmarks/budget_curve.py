"""Does a longer time budget buy accuracy? One experiment config, its arms re-run at several
train.time_budget values, mAP on the experiment's real test set against the budget (PNG + JSON).

    .venv/bin/python benchmarks/budget_curve.py --config exp.yaml --budgets 4m 8m 16m --out /tmp/budget

Each budget is a full `trainer experiment` (its own folder <out>/<budget>/) with
pipeline.train.time_budget set, so every point is scored by the same evaluation core on the same split.
Issue 11: "a longer budget must buy accuracy, shown as a curve".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a `trainer experiment` YAML")
    ap.add_argument("--budgets", nargs="+", required=True, help="train.time_budget values, e.g. 4m 8m 16m")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import yaml

    from edge.atomic import atomic_write_bytes, atomic_write_text
    from trainer.budget import parse_budget
    from trainer.experiment.config import ExperimentConfig
    from trainer.experiment.run import run_experiment

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(Path(args.config).read_text())
    points = []
    for b in sorted(args.budgets, key=parse_budget):
        doc = {**base, "name": f"budget-{b}", "runs_dir": str(out)}
        doc["pipeline"] = {**doc.get("pipeline", {})}
        doc["pipeline"]["train"] = {**doc["pipeline"].get("train", {}), "time_budget": b}
        result = run_experiment(ExperimentConfig.model_validate(doc), force=True, source=args.config)
        for arm in result["arms"]:
            if arm["status"] == "ok":
                points.append({"budget": b, "seconds": parse_budget(b), "arm": arm["arm"],
                               "epochs": arm["train"]["epochs"], **{k: arm["metrics"][k] for k in ("map50", "map50_95")}})
        atomic_write_text(out / "budget_curve.json", json.dumps(points, indent=1) + "\n")
    atomic_write_bytes(out / "budget_curve.png", _plot(points, result["test_set"]))
    for p in points:
        print(f"{p['arm']:>12} {p['budget']:>6}: {p['epochs']:>3} epochs  mAP50 {p['map50']:.3f}  "
              f"mAP50-95 {p['map50_95']:.3f}")
    return 0


def _plot(points: list[dict], test_set: dict) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in sorted({p["arm"] for p in points}):
        pts = [p for p in points if p["arm"] == arm]
        ax.plot([p["seconds"] / 60 for p in pts], [p["map50"] for p in pts], "o-", label=f"{arm} mAP50")
        for p in pts:
            ax.annotate(f"{p['epochs']} ep", (p["seconds"] / 60, p["map50"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xlabel("train.time_budget (min)")
    ax.set_ylabel(f"mAP50, real test set ({test_set['frames']} frames)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
