"""x86 vs emulated aarch64 (benchmarks/pi_check.sh): one Markdown table per model and backend; exit 1 when
a model is beyond tolerance or missing on one side.

    python benchmarks/pi_check_compare.py OUT/x86 OUT/aarch64

Each side's folder holds bench/results.json (`bench run`), counts.json (benchmarks/pi_counts.py: per-frame
person counts / decisions) and detect-<model>.jsonl (`edge detect` on bus.jpg).

Tolerance, per model: |delta mAP50| <= 0.01 and the same person count (detectors) or the same person
decision (classifiers) on >= 95 % of the frames. Why: the two sides run the same graph with different
kernels (AVX2/VNNI vs NEON/dot-product GEMMs, another accumulation order, FMA contraction, ncnn's fp16
storage and arithmetic on ARMv8.2), which moves scores by about 1e-3; that changes a result only for a box
whose score sits on the conf threshold or whose IoU sits at 0.5. On a set of ~20 frames and ~150 boxes,
0.01 of mAP50 is one or two such boxes and 95 % is one frame in 20; a real bug (a wrong layout, scale or
zero point, a broken kernel) moves mAP50 by far more and changes counts on most frames. Classifiers have
no mAP50: their presence F1 is compared instead, with the same bound.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pi_ncnn_twins import SUFFIX, twin_of

MAX_DELTA = 0.01
MIN_EQUAL = 0.95
# ncnn INT8: ncnn's int8 kernels are its own per architecture (measured: the demo detector's file 0.8507 mAP50
# on x86, 0.8621 on the emulated A76, top scores up to 0.033 apart; ONNX Runtime gives the same file identical
# results). A documented runtime difference (README, "Checking on the Pi's architecture"), bounded here so a
# quantiser bug (which moves mAP50 by far more) still fails.
WIDER = {("ncnn", "int8"): (0.02, 0.85)}


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _cells(side: Path) -> dict[tuple[str, str], dict[str, Any]]:
    res = _load(side / "bench" / "results.json") or {}
    return {(c["model"], c["backend"]): c for c in res.get("cells", [])}


def _bus(side: Path, model: str) -> str:
    try:
        lines = (side / f"detect-{model}.jsonl").read_text().splitlines()
        rec = json.loads(lines[0])
    except (OSError, ValueError, IndexError):
        return "-"
    if "count" in rec:
        return f"{rec['count']} ({max(rec['scores'], default=0):.4f})"
    return f"{rec.get('person')} ({rec.get('person_prob')})"


def _accuracy(cell: dict[str, Any] | None) -> float | None:
    if not cell or cell.get("status") != "ok":
        return None
    v = cell.get("map50") if cell.get("task") == "detect" else cell.get("presence_f1")
    return None if v is None else float(v)


def _equal(a: dict[str, Any], b: dict[str, Any]) -> tuple[float | None, float]:
    """Share of the frames with the same count (or person decision), and the largest |top score| change."""
    fa, fb = a.get("frames", {}), b.get("frames", {})
    common = sorted(set(fa) & set(fb))
    if not common or len(common) != len(fa) or len(common) != len(fb):
        return None, float("nan")
    key, score = ("count", "top") if a.get("task") == "detect" else ("person", "prob")
    same = sum(fa[f][key] == fb[f][key] for f in common)
    return same / len(common), max(abs(fa[f][score] - fb[f][score]) for f in common)


def _verdict(why: list[str], wider: bool) -> str:
    if why:
        return "BEYOND: " + "; ".join(why)
    return "ok (wider bound)" if wider else "ok"


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def compare(x86: Path, arm: Path) -> tuple[list[str], bool]:
    cx, ca = _cells(x86), _cells(arm)
    kx, ka = (_load(x86 / "counts.json") or {}), (_load(arm / "counts.json") or {})
    mx, ma = kx.get("models", {}), ka.get("models", {})
    lines = ["| model | backend | x86 mAP50 | aarch64 mAP50 | delta | person counts equal % | max top-score diff "
             "| bus.jpg x86 | bus.jpg aarch64 | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    ok_all = True
    models = sorted({m for m, _ in cx} | {m for m, _ in ca} | set(mx) | set(ma))
    for model in models:
        backends = sorted({b for m, b in cx if m == model} | {b for m, b in ca if m == model}) or ["-"]
        for backend in backends:
            a, b = _accuracy(cx.get((model, backend))), _accuracy(ca.get((model, backend)))
            delta = None if a is None or b is None else b - a
            eq, top = (_equal(mx[model], ma[model]) if model in mx and model in ma else (None, float("nan")))
            precision = (mx.get(model) or ma.get(model) or {}).get("precision")
            max_delta, min_equal = WIDER.get((backend, precision), (MAX_DELTA, MIN_EQUAL))
            why = []
            if delta is None:
                why.append("no bench result on " + ("both sides" if a is None and b is None
                                                     else "x86" if a is None else "aarch64"))
            elif abs(delta) > max_delta:
                why.append(f"|delta| > {max_delta}")
            if eq is None:
                why.append("no per-frame counts on both sides")
            elif eq < min_equal:
                why.append(f"counts equal < {min_equal:.0%}")
            ok_all &= not why
            task = (cx.get((model, backend)) or ca.get((model, backend)) or {}).get("task")
            label = model + (" (presence F1)" if task == "classify" else "")
            lines.append(f"| {label} | {backend} | {_fmt(a)} | {_fmt(b)} | {_fmt(delta, '+.4f')} | "
                         f"{_fmt(None if eq is None else 100 * eq, '.1f')} | {top:.4f} | {_bus(x86, model)} | "
                         f"{_bus(arm, model)} | {_verdict(why, (backend, precision) in WIDER)} |")
    n = len(next(iter(mx.values()), {}).get("frames", {}))
    lines += ["", f"Tolerance: |delta mAP50| <= {MAX_DELTA} (classifiers: presence F1) and the same person count "
              f"(classifiers: decision) on >= {MIN_EQUAL:.0%} of {n} frames; bus.jpg: count (top score) from "
              "`edge detect`."]
    lines += [f"- {b} {p}: |delta| <= {d}, counts equal >= {e:.0%} (its kernels differ per architecture; README)"
              for (b, p), (d, e) in WIDER.items()]
    for name, k in (("x86", kx), ("aarch64", ka)):
        if k:
            lines.append(f"- {name}: cpu {json.dumps(k.get('cpu'))}; runtimes {json.dumps(k.get('runtimes'))}")
    return lines, ok_all


def fp16_table(x86: Path, arm: Path) -> list[str]:
    """Each ncnn model against its twin (pi_ncnn_twins.py): ncnn's fp16 storage/arithmetic on and off, on
    both sides. On aarch64 this is the Pi 5's fp16 path; x86 ncnn has fp16 storage only."""
    sides = [(name, _cells(d), (_load(d / "counts.json") or {}).get("models", {})) for name, d in
             (("x86", x86), ("aarch64", arm))]
    rows = []
    for model in sorted({m for _, c, _ in sides for m, _ in c}):
        base = twin_of(model)
        if base is None:
            continue
        for side, cells, counts in sides:
            backend = "ncnn"
            a, b = _accuracy(cells.get((base, backend))), _accuracy(cells.get((model, backend)))
            eq, top = (_equal(counts[base], counts[model]) if base in counts and model in counts
                       else (None, float("nan")))
            on_first = model.endswith(SUFFIX[True])
            on, off = (b, a) if on_first else (a, b)
            rows.append(f"| {base} | {side} | {_fmt(off)} | {_fmt(on)} | "
                        f"{_fmt(None if on is None or off is None else on - off, '+.4f')} | "
                        f"{_fmt(None if eq is None else 100 * eq, '.1f')} | {top:.4f} | "
                        f"{'on' if not on_first else 'off'} |")
    if not rows:
        return []
    return ["", "ncnn fp16 storage/arithmetic, each model against its twin (same file, the other setting):", "",
            "| model | side | mAP50 fp16 off | mAP50 fp16 on | on - off | counts equal % | max top-score diff "
            "| export's choice |", "|---|---|---|---|---|---|---|---|", *rows]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: pi_check_compare.py X86_DIR AARCH64_DIR", file=sys.stderr)
        return 2
    lines, ok = compare(Path(args[0]), Path(args[1]))
    lines += fp16_table(Path(args[0]), Path(args[1]))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
