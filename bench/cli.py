"""`bench`: measure a run's models on this device (a Pi 5 or a workstation) and compare results.

bench run --models runs/site1/manifest.json [--source FILE|DIR|DEVICE|URL] [--labels DIR [--negatives DIR]]
          [--threads 1,2,4] [--backends onnxruntime,litert,ncnn] [--duration 10m] [--out DIR]
bench compare A/results.json B/results.json
bench fleet DIR [--out OUT]   (DIR/<host>/results.json, each copied from one host's `bench run --out`)

Against Ultralytics' own predict on the same files and frames (a workstation comparison: bench runs on the
device, which has no Ultralytics): benchmarks/bench_vs_ultralytics.py with the same arguments as bench run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console

from edge.errors import CctvkitError, run_command


def _default_threads() -> str:
    cpus = psutil.cpu_count(logical=True) or 1
    return ",".join(str(t) for t in (1, 2, 4) if t <= cpus) or "1"


def _labelled(args: argparse.Namespace, manifest: Any) -> Any:
    from edge.eval import load_yolo_folder, with_negatives
    from edge.eval.holdout import scene_holdout

    if args.negatives and not args.labels:
        raise CctvkitError("--negatives needs --labels", args.negatives, "add --labels DIR (YOLO images/labels)")
    if args.labels:
        data = load_yolo_folder(args.labels, max_frames=args.max_frames, person_class=args.label_class)
        return with_negatives(data, args.negatives, args.max_frames)
    if manifest is not None and "scene" in manifest.data.get("stages", {}):
        return scene_holdout(manifest, args.max_frames)
    return None


# (models, the matrix's cells, frames, conf) -> one row per model comparing it with another runtime.
ReferenceRows = Callable[[list[Any], list[dict[str, Any]], list[np.ndarray], float], list[dict[str, Any]]]


def cmd_run(args: argparse.Namespace, vs_ultralytics: ReferenceRows | None = None) -> int:
    """vs_ultralytics: benchmarks/bench_vs_ultralytics.py's rows (Ultralytics' predict on the same files and
    frames); bench itself never loads Ultralytics."""
    from bench.cells import CellOptions
    from bench.feeds import CaptureFeed, ListFeed, parse_duration
    from bench.matrix import build_cells, check_backends, load_models, parse_list, results_doc, run_matrix
    from bench.report import matrix_table, prepare_out_dir, stdout_console, write_matrix_reports

    err = Console(stderr=True)
    models, manifest = load_models(args.models, args.metadata)
    only = parse_list(args.only, str, "model name")
    if only is not None:
        unknown = [n for n in only if n not in {m.name for m in models}]
        if unknown:
            raise CctvkitError(f"no model named {', '.join(unknown)}", args.models[0],
                               f"choose from: {', '.join(m.name for m in models)}")
        models = [m for m in models if m.name in only]
    threads = parse_list(args.threads, int, "thread count") or [2]
    cells = build_cells(models, check_backends(parse_list(args.backends, str, "backend")), threads,
                        parse_list(args.precision, str, "precision"), parse_list(args.imgsz, int, "imgsz"))
    duration = parse_duration(args.duration)
    data = _labelled(args, manifest)
    if data is None:
        err.print("no labelled frames (no --labels and no scene holdout in the run): accuracy is not measured")
    if args.source:
        feed: Any = CaptureFeed(args.source)
    elif data is not None:
        feed = ListFeed(data.presence_frames, f"the {len(data.presence_frames)} labelled frames, decoded in memory, cycled")
    else:
        raise CctvkitError("nothing to run the models on", args.models[0], "pass --source or --labels")
    opts = CellOptions(conf=args.conf, iou=args.iou, threshold=args.threshold, speed_frames=args.frames,
                       duration_s=duration, interval_s=1.0 if duration else 0.5)
    params = {k: v for k, v in vars(args).items() if k != "func"}
    out = Path(args.out) if args.out else (manifest.run_dir / "bench-device" if manifest else Path("bench-device"))
    ul_frames: list[np.ndarray] = []
    try:
        prepare_out_dir(out)
        rows = run_matrix(cells, data, feed, opts, progress=not args.no_progress)
        if vs_ultralytics is not None:
            ul_frames = data.frames[: args.frames] if data is not None else [feed.next() for _ in range(20)]
    finally:
        feed.close()
    doc = results_doc(rows, manifest=manifest, data=data, feed=feed, opts=opts, params=params)
    if vs_ultralytics is not None:
        doc["vs_ultralytics"] = vs_ultralytics(models, rows, ul_frames, args.conf)
    files = write_matrix_reports(doc, out, plots=not args.no_plots)
    console = stdout_console()
    console.print(matrix_table(doc))
    for cell in rows:
        if cell["status"] != "ok":
            console.print(f"[red]failed[/] {cell['id']}: {cell['reason']}")
    for line in doc["verdict"]["summary"]:
        console.print(line)
    for r in doc.get("vs_ultralytics", []):
        ratio = f"{r['ratio']:.2f}x ({r['cctvkit_fps']:.1f} vs {r['ultralytics_fps']:.1f} FPS)" if "ratio" in r else "-"
        console.print(f"vs Ultralytics {r['model']}: {ratio} {r.get('note', '')}")
    err.print(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0 if any(c["status"] == "ok" for c in rows) else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import compare_files, compare_lines
    from bench.report import stdout_console

    diff, table = compare_files(args.a, args.b, args.min_change)
    out = stdout_console()
    if diff["changes"]:
        out.print(table)
    for line in compare_lines(diff):
        out.print(line)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from bench.fleet import build_fleet, fleet_table, write_fleet
    from bench.report import stdout_console

    out = Path(args.out) if args.out else Path(args.dir)
    fleet = build_fleet(args.dir, out)
    files = write_fleet(fleet, out, plots=not args.no_plots)
    console = stdout_console()
    console.print(fleet_table(fleet))
    for host in fleet["hosts"]:
        console.print(host["line"])
    for note in fleet.get("notes", []):
        console.print(note)
    Console(stderr=True).print(f"wrote {', '.join(str(p) for p in files.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="models x backends x threads on this device: speed, accuracy, machine health")
    run.add_argument("--models", nargs="+", required=True,
                     help="runs/<name>/manifest.json (or the run folder) and/or .onnx/.tflite files")
    run.add_argument("--metadata", help="metadata.yaml for bare .tflite files without embedded class names")
    run.add_argument("--source", help="speed frames from a video FILE, image DIR, camera DEVICE (0, /dev/video0, "
                     "picamera2) or stream URL (default: the labelled frames)")
    run.add_argument("--labels", help="YOLO folder (images/ + labels/) to score accuracy on (default: the run's "
                     "scene holdout with pseudo-labels)")
    run.add_argument("--negatives", help="folder of real no-person frames added to --labels")
    run.add_argument("--label-class", type=int, help="class id of person in --labels (default: from its data.yaml, else 0)")
    run.add_argument("--threads", default=_default_threads(), help="comma-separated thread counts (default %(default)s)")
    run.add_argument("--backends", help="comma-separated backends (default: every registered one that reads a "
                     "model's format)")
    run.add_argument("--precision", help="only models of these precisions, e.g. int8")
    run.add_argument("--imgsz", help="only models of these input sizes, e.g. 320,640")
    run.add_argument("--only", help="only these model names (comma-separated)")
    run.add_argument("--duration", help="time each cell for this long (10m, 90s) and record temperature, clock "
                     "and FPS over time (default: --frames frames)")
    run.add_argument("--frames", type=int, default=100, help="frames in each speed pass (default %(default)s)")
    run.add_argument("--max-frames", type=int, default=120,
                     help="at most this many labelled (and as many no-person) frames (default %(default)s)")
    run.add_argument("--conf", type=float, default=0.25, help="detector operating threshold")
    run.add_argument("--iou", type=float, default=0.45)
    run.add_argument("--threshold", type=float, default=0.5, help="classifier person probability threshold")
    run.add_argument("--out", help="results folder (default: <run>/bench-device)")
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)
    cmp = sub.add_parser("compare", help="differences between two `bench run` results.json files")
    cmp.add_argument("a", help="results.json (or its folder): the baseline")
    cmp.add_argument("b", help="results.json (or its folder): the new one")
    cmp.add_argument("--min-change", type=float, default=0.0, help="hide relative changes below this (0.05 = 5%%)")
    cmp.set_defaults(func=cmd_compare)
    fleet = sub.add_parser("fleet", help="one report (fleet.md, .csv, .json, .png) of many hosts' `bench run` results")
    fleet.add_argument("dir", help="folder of DIR/<host>/results.json, each copied from one host's `bench run --out`")
    fleet.add_argument("--out", help="report folder (default: DIR)")
    fleet.add_argument("--no-plots", action="store_true")
    fleet.set_defaults(func=cmd_fleet)
    return parser


def main(argv: list[str] | None = None, vs_ultralytics: ReferenceRows | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "frames", 1) < 1 or getattr(args, "max_frames", 1) < 1:
        print("error: --frames and --max-frames must be >= 1", file=sys.stderr)
        return 2
    if vs_ultralytics is not None and args.func is cmd_run:
        return run_command(lambda a: cmd_run(a, vs_ultralytics), args)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
