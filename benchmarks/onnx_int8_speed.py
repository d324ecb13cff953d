"""ONNX Runtime INT8 vs FP32 inference latency, measured side by side in one process.

    .venv/bin/python benchmarks/onnx_int8_speed.py                       # the demo run's fp32 and int8
    .venv/bin/python benchmarks/onnx_int8_speed.py --fp32 a.onnx --int8 q1.onnx --int8 q2.onnx --threads 1 2
    .venv/bin/python benchmarks/onnx_int8_speed.py --config session.qdqisint8allowed=1 --opt-level extended

Every model gets its own session (edge.backends.onnxruntime's options unless --opt-level/--config change
them) and the same input tensor. The models take turns in rounds (order reversed every other round, ABC CBA)
of --per-round runs each, so load from anything else on the machine falls on all of them alike; figures are
medians over all runs and the ratio is each model's median over the FP32 median at the same thread count.
Goal (issue 4): INT8 <= 0.75x FP32 on the same backend. Says nothing about accuracy (bench/evaluate.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import DEMO_RUN

from edge.errors import CctvkitError
from edge.manifest import Manifest

OPT_LEVELS = ("disable", "basic", "extended", "all")


def session(path: Path, threads: int, opt_level: str, config: dict[str, str]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    opts.log_severity_level = 3
    for key, value in config.items():
        opts.add_session_config_entry(key, value)
    if not path.is_file():
        raise CctvkitError("model file not found", path, "pass an existing .onnx file")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def measure(
    models: dict[str, Path],
    threads: int,
    rounds: int,
    per_round: int,
    opt_level: str = "all",
    config: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Median / p10 / p90 inference ms per model label at one thread count, interleaved in rounds."""
    sessions = {k: session(p, threads, opt_level, config or {}) for k, p in models.items()}
    first = next(iter(sessions.values())).get_inputs()[0]
    x = np.random.default_rng(0).uniform(0, 1, [int(d) for d in first.shape]).astype(np.float32)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():  # warm-up: first runs allocate buffers and pack weights
        for _ in range(3):
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    order = list(sessions)
    for r in range(rounds):
        for k in order if r % 2 == 0 else order[::-1]:
            s, feed = sessions[k], feeds[k]
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.run(None, feed)
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {
        k: {
            "median_ms": statistics.median(v),
            "p10_ms": float(np.percentile(v, 10)),
            "p90_ms": float(np.percentile(v, 90)),
            "runs": len(v),
        }
        for k, v in times.items()
    }


def _labelled(items: list[str]) -> dict[str, Path]:
    """'label=path' or 'path' (label: the file stem)."""
    out: dict[str, Path] = {}
    for item in items:
        label, _, path = item.rpartition("=")
        out[label or Path(path).stem] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=DEMO_RUN, help="run whose detector-onnx-fp32/int8 to compare")
    ap.add_argument("--fp32", help="FP32 model (label=path or path); default: the run's")
    ap.add_argument("--int8", action="append", default=[], help="INT8 model(s); default: the run's")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--opt-level", choices=OPT_LEVELS, default="all")
    ap.add_argument("--config", action="append", default=[], help="session config entry key=value")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    if args.fp32 is None or not args.int8:
        manifest = Manifest.load(args.run)
        fp32 = {"fp32": manifest.model_path("detector-onnx-fp32")}
        int8 = {"int8": manifest.model_path("detector-onnx-int8")}
    if args.fp32 is not None:
        fp32 = _labelled([args.fp32 if "=" in args.fp32 else f"fp32={args.fp32}"])
    if args.int8:
        int8 = _labelled(args.int8)
    models = {**fp32, **int8}
    config = dict(item.split("=", 1) for item in args.config)
    ref = next(iter(fp32))
    report: dict[str, Any] = {"opt_level": args.opt_level, "config": config, "results": {}}
    for threads in args.threads:
        res = measure(models, threads, args.rounds, args.per_round, args.opt_level, config)
        report["results"][str(threads)] = res
        print(f"threads={threads}  ({args.rounds} rounds x {args.per_round} runs, interleaved; medians)")
        for label, r in res.items():
            ratio = r["median_ms"] / res[ref]["median_ms"]
            r["ratio_vs_fp32"] = ratio
            print(
                f"  {label:<28} {r['median_ms']:8.2f} ms  (p10 {r['p10_ms']:.2f}, p90 {r['p90_ms']:.2f})"
                f"  {ratio:5.2f}x FP32"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CctvkitError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
