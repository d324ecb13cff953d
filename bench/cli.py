"""`bench`: measure a run's models with the on-device runtime (this machine or a Pi)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from edge.errors import run_command
from edge.manifest import Manifest


def cmd_run(args: argparse.Namespace) -> int:
    from bench.evaluate import evaluate_run
    from bench.report import results_table, stdout_console, write_reports

    manifest = Manifest.load(args.models)
    result = evaluate_run(manifest, threads=args.threads, conf=args.conf, iou=args.iou,
                          max_frames=args.max_frames, progress=not args.no_progress)
    out = Path(args.out) if args.out else manifest.run_dir / "bench-device"
    files = write_reports(result, out)
    stdout_console().print(results_table(result))
    Console(stderr=True).print(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="every model of a run on its held-out frames: FPS, latency, accuracy")
    run.add_argument("--models", required=True, help="runs/<name>/manifest.json (or the run directory)")
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--conf", type=float, default=0.25)
    run.add_argument("--iou", type=float, default=0.45)
    run.add_argument("--max-frames", type=int, default=120)
    run.add_argument("--out", help="results folder (default: <run>/bench-device)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
