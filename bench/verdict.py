"""Detection vs classification: which model gives the best person/no-person answer at a given frame rate.

Both kinds are scored on the same frames by image-level presence F1 (a detector says "person" when any
person box reaches the operating threshold). An FPS budget is the frame rate the camera needs; a cell fits
it when its sustained FPS reaches it. The Pareto front holds the cells no other cell beats on both axes.
"""

from __future__ import annotations

from typing import Any

BUDGETS_FPS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 240.0)
FPS_KEY = "fps_sustained"
ACC_KEY = "presence_f1"


def scored(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells that ran and have both an FPS and a presence F1."""
    return [c for c in cells if c.get("status") == "ok" and c.get(FPS_KEY) and c.get(ACC_KEY) is not None]


def pareto_front(cells: list[dict[str, Any]]) -> list[str]:
    """Ids of the cells not dominated in (FPS, presence F1), ordered by FPS."""
    pts = scored(cells)
    front = []
    for c in pts:
        dominated = any(
            o[FPS_KEY] >= c[FPS_KEY] and o[ACC_KEY] >= c[ACC_KEY]
            and (o[FPS_KEY] > c[FPS_KEY] or o[ACC_KEY] > c[ACC_KEY]) for o in pts
        )
        if not dominated:
            front.append(c)
    return [c["id"] for c in sorted(front, key=lambda c: c[FPS_KEY])]


def _best(cells: list[dict[str, Any]], task: str, budget: float) -> dict[str, Any] | None:
    fit = [c for c in cells if c["task"] == task and c[FPS_KEY] >= budget]
    if not fit:
        return None
    # Equal presence F1: the detector that localises better (mAP50-95) before the faster one, so a model
    # that lost its box accuracy (a full-integer export) does not win on speed alone.
    c = max(fit, key=lambda c: (c[ACC_KEY], c.get("map50_95") or 0.0, c[FPS_KEY]))
    return {"id": c["id"], "presence_f1": c[ACC_KEY], "fps": c[FPS_KEY]}


def budget_table(cells: list[dict[str, Any]], budgets: tuple[float, ...] = BUDGETS_FPS) -> list[dict[str, Any]]:
    """Per budget: the best detector cell, the best classifier cell and the winner. Stops after the first
    budget that no cell reaches (higher ones would only repeat 'none')."""
    pts = scored(cells)
    rows = []
    for b in budgets:
        det, cls = _best(pts, "detect", b), _best(pts, "classify", b)
        winner: str | None
        if det and cls:
            d, k = det["presence_f1"], cls["presence_f1"]
            winner = "detector" if d > k else "classifier" if k > d else "tie"
        else:
            winner = "detector" if det else "classifier" if cls else None
        rows.append({"budget_fps": b, "detector": det, "classifier": cls, "winner": winner})
        if winner is None:
            break
    return rows


def summary_lines(cells: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """Plain sentences: each model's F1 and FPS, and which kind wins over which budget range."""
    pts = scored(cells)
    lines = []
    for task, word in (("detect", "detector"), ("classify", "classifier")):
        for c in sorted((c for c in pts if c["task"] == task), key=lambda c: -c[FPS_KEY]):
            lines.append(f"{word} {c['id']}: presence F1 {c[ACC_KEY]:.3f} at {c[FPS_KEY]:.1f} FPS")
    if not pts:
        return ["no cell ran with labelled frames: nothing to compare"]
    spans: list[tuple[float, float, str, str]] = []  # (from, to, winner, best id)
    for row in table:
        if row["winner"] is None:
            continue
        pick = row["detector"] if row["winner"] in ("detector", "tie") else row["classifier"]
        label = (row["winner"], pick["id"])
        if spans and spans[-1][2:] == label:
            spans[-1] = (spans[-1][0], row["budget_fps"], *label)
        else:
            spans.append((row["budget_fps"], row["budget_fps"], *label))
    for lo, hi, winner, cid in spans:
        rng = f"{lo:g} FPS" if lo == hi else f"{lo:g}-{hi:g} FPS"
        lines.append(f"budget {rng}: the {winner} wins ({cid})" if winner != "tie"
                     else f"budget {rng}: detector and classifier tie on F1 ({cid})")
    top = max(c[FPS_KEY] for c in pts)
    lines.append(f"no cell reaches more than {top:.1f} FPS")
    return lines


def verdict(cells: list[dict[str, Any]]) -> dict[str, Any]:
    table = budget_table(cells)
    return {"fps_key": FPS_KEY, "accuracy_key": ACC_KEY, "pareto": pareto_front(cells), "budgets": table,
            "summary": summary_lines(cells, table)}
