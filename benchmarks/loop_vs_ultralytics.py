"""Speed of edge's per-frame loop against Ultralytics' predict on the same frames, model file and runtime.

    .venv/bin/python benchmarks/loop_vs_ultralytics.py                  # the demo run, 320 and 640
    .venv/bin/python benchmarks/loop_vs_ultralytics.py --run runs/x --frames 300 --json out.json
    .venv/bin/python benchmarks/loop_vs_ultralytics.py --onnx a.onnx --onnx b.onnx --no-640
    .venv/bin/python benchmarks/loop_vs_ultralytics.py --workers 2 --worker-threads 1   # + the worker pool

Each loop decodes the frames of the video, runs the detector on them and holds the results:
  edge:          cv2 read -> Detector.detect(frame)             (edge/detector.py, numpy pre/post)
  edge+capture:  the daemon's structure: edge.sources Capture thread decodes (lossless: every frame)
                 while the loop runs Detector.detect on the previous frame
  edge+workers:  with --workers N > 1, the daemon's model.workers: the Capture thread decodes while N
                 Detector instances of --worker-threads threads each take the newest frames on N threads
                 (edge/workers.py WorkerPool, what `edge run` uses); more frames per second, but each
                 frame runs on fewer threads, so its latency (frame taken -> result) goes up
  ultralytics:   cv2 read -> YOLO(model_file).predict(frame)    (Ultralytics' torch pre/post, Results)
Same .onnx file, same ONNX Runtime session options and thread count --threads (Ultralytics' own session is
replaced with edge's ort_session unless --ultralytics-session default), same imgsz, conf, iou, classes and
max_det. Latency per frame: pre + inference + post of one frame (edge+workers: from the moment a worker
takes the frame to its result), median over the frames.
The loops alternate in rounds over the same frames (ABC CBA order) so load from anything else on the
machine falls on both alike. Goals (issue 3): edge FPS >= 1.5x Ultralytics; edge pre + post <= 10 % of
inference time at imgsz 320 and 640.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    DEMO_RUN,
    VTEST,
    Case,
    check_video,
    default_threads,
    exported_case,
    frames,
    onnx_case,
    run_case,
)
from rich.console import Console
from rich.table import Table

from edge.backends.onnxruntime import ort_session
from edge.detector import Detector
from edge.errors import CctvkitError

console = Console(width=200)  # the table is wide; a log file or pipe must not wrap it


@dataclass
class Tally:
    frames: int = 0
    seconds: float = 0.0
    detections: int = 0
    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0
    counts: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    by_frame: dict[int, int] = field(default_factory=dict)  # edge+workers: persons by frame position

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def per_frame(self, ms: float) -> float:
        return ms / self.frames if self.frames else 0.0

    def latency_p50(self) -> float:
        return float(statistics.median(self.latency_ms)) if self.latency_ms else 0.0


class EdgeLoop:
    name = "edge"

    def __init__(self, case: Case, threads: int, conf: float, iou: float, max_det: int):
        self.det = Detector(
            case.spec, case.path, backend="onnxruntime", threads=threads, conf=conf, iou=iou,
            classes=[case.spec.person_class], max_det=max_det,
        )  # fmt: skip

    def run(self, video: Path, skip: int, n: int, tally: Tally) -> None:
        it = frames(video, skip)
        t0 = time.perf_counter()
        for _ in range(n):
            dets = self.det.detect(next(it))
            t = self.det.timing
            tally.pre_ms += t.pre_ms
            tally.infer_ms += t.infer_ms
            tally.post_ms += t.post_ms
            tally.latency_ms.append(t.total_ms)
            tally.counts.append(len(dets))
        tally.seconds += time.perf_counter() - t0
        tally.frames += n


class EdgeCaptureLoop(EdgeLoop):
    """The daemon's structure: decoding on the Capture thread (edge.sources, lossless so every frame of the
    segment is processed) while the main thread runs the detector on the frame before."""

    name = "edge+capture"

    def run(self, video: Path, skip: int, n: int, tally: Tally) -> None:
        from edge.sources import Capture, make_source

        src = make_source({"type": "file", "path": str(video), "loop": True, "realtime": False})
        with Capture(src, lossless=True) as cap:
            for _ in range(skip):  # untimed, as frames() skips
                self._next(cap)
            t0 = time.perf_counter()
            for _ in range(n):
                dets = self.det.detect(self._next(cap))
                t = self.det.timing
                tally.pre_ms += t.pre_ms
                tally.infer_ms += t.infer_ms
                tally.post_ms += t.post_ms
                tally.latency_ms.append(t.total_ms)
                tally.counts.append(len(dets))
            tally.seconds += time.perf_counter() - t0
        tally.frames += n

    @staticmethod
    def _next(cap: Any) -> Any:
        frame = cap.latest(timeout=10.0)
        if frame is None:
            raise CctvkitError("the capture thread delivered no frame in 10 s", fix="check the video")
        return frame.image


class EdgeWorkersLoop:
    """The daemon with model.workers = N: the Capture thread decodes (lossless) while a WorkerPool of N
    Detectors, `threads` runtime threads each, takes the newest frames on N threads (edge/workers.py)."""

    name = "edge+workers"

    def __init__(self, case: Case, workers: int, threads: int, conf: float, iou: float, max_det: int):
        self.workers, self.threads = workers, threads
        self.dets = [
            Detector(case.spec, case.path, backend="onnxruntime", threads=threads, conf=conf, iou=iou,
                     classes=[case.spec.person_class], max_det=max_det)
            for _ in range(workers)
        ]  # fmt: skip

    @staticmethod
    def _infer(det: Detector, image: Any, index: int) -> tuple[int, None]:
        return len(det.detect(image)), None

    def run(self, video: Path, skip: int, n: int, tally: Tally) -> None:
        from edge.sources import Capture, make_source
        from edge.workers import WorkerPool

        src = make_source({"type": "file", "path": str(video), "loop": True, "realtime": False})
        with Capture(src, lossless=True) as cap:
            for _ in range(skip):  # untimed; frame numbers go on counting, so frame i is position i
                EdgeCaptureLoop._next(cap)
            pool = WorkerPool(self.dets, self._infer, cap)
            t0 = time.perf_counter()
            pool.start()
            try:
                for _ in range(n):  # the first n results; workers may have a frame or two more in hand
                    r = pool.get(timeout=10.0)
                    if r is None:
                        raise CctvkitError("the workers delivered no result in 10 s", fix="check the video")
                    tally.pre_ms += r.timing.pre_ms
                    tally.infer_ms += r.timing.infer_ms
                    tally.post_ms += r.timing.post_ms
                    tally.latency_ms.append((r.done - r.taken) * 1e3)
                    tally.by_frame[r.index] = r.count
                tally.seconds += time.perf_counter() - t0
            finally:
                pool.join(5.0)
        tally.frames += n


class UltralyticsLoop:
    name = "ultralytics"

    def __init__(self, case: Case, threads: int, conf: float, iou: float, max_det: int, session: str):
        from export.offline import ultralytics_yolo  # configures Ultralytics offline before import

        self.model = ultralytics_yolo()(str(case.path), task="detect")
        self.kw: dict[str, Any] = dict(
            imgsz=list(case.spec.imgsz), conf=conf, iou=iou, classes=[case.spec.person_class],
            max_det=max_det, device="cpu", verbose=False,
        )  # fmt: skip
        self._warm(case)
        self.session_note = "Ultralytics' own ONNX Runtime session"
        if session == "matched":
            backend = self.model.predictor.model.backend
            backend.session = ort_session(str(case.path), threads)
            self._warm(case)
            self.session_note = (
                f"edge's ort_session(threads={threads}) swapped into Ultralytics' ONNX backend"
            )

    def _warm(self, case: Case) -> None:
        import numpy as np

        h, w = case.spec.imgsz
        for _ in range(2):
            self.model.predict(np.full((h, w, 3), 114, np.uint8), **self.kw)

    def run(self, video: Path, skip: int, n: int, tally: Tally) -> None:
        it = frames(video, skip)
        t0 = time.perf_counter()
        for _ in range(n):
            result = self.model.predict(next(it), **self.kw)[0]
            sp = result.speed
            tally.pre_ms += sp["preprocess"]
            tally.infer_ms += sp["inference"]
            tally.post_ms += sp["postprocess"]
            tally.latency_ms.append(sp["preprocess"] + sp["inference"] + sp["postprocess"])
            tally.counts.append(len(result.boxes))
        tally.seconds += time.perf_counter() - t0
        tally.frames += n


def bench_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    console.rule(f"[bold]{case.label}[/]  {case.path}")
    edge = EdgeLoop(case, args.threads, args.conf, args.iou, args.max_det)
    daemon = EdgeCaptureLoop(case, args.threads, args.conf, args.iou, args.max_det)
    ultra = UltralyticsLoop(case, args.threads, args.conf, args.iou, args.max_det, args.ultralytics_session)
    loops: list[Any] = [edge, daemon, ultra]
    pool = None
    if args.workers > 1:
        pool = EdgeWorkersLoop(case, args.workers, args.worker_threads, args.conf, args.iou, args.max_det)
        loops.insert(2, pool)
    tallies = {loop.name: Tally() for loop in loops}
    for r in range(args.rounds):
        for loop in loops if r % 2 == 0 else loops[::-1]:
            loop.run(args.video, r * args.frames, args.frames, tallies[loop.name])
            t = tallies[loop.name]
            console.print(f"  round {r + 1}/{args.rounds} {loop.name:12s} {t.fps:6.1f} FPS so far")
    e, d, u = tallies["edge"], tallies["edge+capture"], tallies["ultralytics"]
    same = sum(a == b for a, b in zip(e.counts, u.counts, strict=True))
    lat = {name: round(t.latency_p50(), 2) for name, t in tallies.items()}
    out = {
        "case": case.label,
        "model": str(case.path),
        "imgsz": list(case.spec.imgsz),
        "frames_per_loop": e.frames,
        "threads": args.threads,
        "ultralytics_session": ultra.session_note,
        "edge_fps": round(e.fps, 2),
        "ultralytics_fps": round(u.fps, 2),
        "fps_ratio": round(e.fps / u.fps, 3) if u.fps else None,
        "edge_capture_fps": round(d.fps, 2),
        "capture_fps_ratio": round(d.fps / u.fps, 3) if u.fps else None,
        "edge_ms": {k: round(e.per_frame(getattr(e, k)), 3) for k in ("pre_ms", "infer_ms", "post_ms")},
        "ultralytics_ms": {k: round(u.per_frame(getattr(u, k)), 3) for k in ("pre_ms", "infer_ms", "post_ms")},
        "edge_pre_post_pct_of_infer": round(100 * (e.pre_ms + e.post_ms) / e.infer_ms, 2),
        "person_count_same_pct": round(100 * same / len(e.counts), 1),
        "persons_per_frame": {"edge": round(sum(e.counts) / e.frames, 2), "ultralytics": round(sum(u.counts) / u.frames, 2)},
        "latency_p50_ms": lat,
    }  # fmt: skip
    if pool is not None:
        w = tallies[pool.name]
        # The same model on the same frames: the pool must find what the sequential loop found.
        agree = [w.by_frame[i] == e.counts[i] for i in w.by_frame if i < len(e.counts)]
        out["workers"] = {
            "workers": pool.workers, "threads_per_worker": pool.threads, "fps": round(w.fps, 2),
            "fps_ratio": round(w.fps / u.fps, 3) if u.fps else None,
            "latency_p50_ms": lat[pool.name], "same_count_as_edge_pct": round(100 * sum(agree) / max(1, len(agree)), 1),
        }  # fmt: skip
    return out


def report(results: list[dict[str, Any]]) -> None:
    table = Table(
        title="edge vs Ultralytics predict (same model file, ONNX Runtime, same frames, decode included)"
    )
    cols = ("model", "imgsz", "frames", "edge FPS", "edge+capture FPS", "ultra FPS", "ratio", "capture ratio",
            "edge pre/infer/post ms", "ultra pre/infer/post ms", "edge pre+post % infer", "same count %")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        em, um = r["edge_ms"], r["ultralytics_ms"]
        table.add_row(
            r["case"], "x".join(map(str, r["imgsz"])), str(r["frames_per_loop"]),
            f"{r['edge_fps']:.1f}", f"{r['edge_capture_fps']:.1f}", f"{r['ultralytics_fps']:.1f}",
            f"{r['fps_ratio']:.2f}x", f"{r['capture_fps_ratio']:.2f}x",
            f"{em['pre_ms']:.2f}/{em['infer_ms']:.2f}/{em['post_ms']:.2f}",
            f"{um['pre_ms']:.2f}/{um['infer_ms']:.2f}/{um['post_ms']:.2f}",
            f"{r['edge_pre_post_pct_of_infer']:.1f} %", f"{r['person_count_same_pct']:.0f}",
        )  # fmt: skip
    console.print(table)
    for r in results:
        lat = r["latency_p50_ms"]
        console.print(
            f"{r['case']}: latency per frame (p50) edge {lat['edge']:.1f} ms, edge+capture "
            f"{lat['edge+capture']:.1f} ms, ultralytics {lat['ultralytics']:.1f} ms"
        )
        if "workers" in r:
            w = r["workers"]
            console.print(
                f"{r['case']}: edge+workers {w['workers']} x {w['threads_per_worker']} threads: "
                f"{w['fps']:.1f} FPS = {w['fps_ratio']:.2f}x Ultralytics ({r['ultralytics_fps']:.1f} FPS, "
                f"{r['threads']} threads); latency per frame (p50) {w['latency_p50_ms']:.1f} ms against "
                f"{lat['edge+capture']:.1f} ms for one worker x {r['threads']} threads; same person count as "
                f"edge on {w['same_count_as_edge_pct']:.0f} % of frames"
            )
    for r in results:
        ratio = max(r["fps_ratio"] or 0.0, r["capture_fps_ratio"] or 0.0, (r.get("workers") or {}).get("fps_ratio") or 0.0)
        console.print(
            f"{r['case']}: FPS ratio {r['fps_ratio']:.2f}x sequential, {r['capture_fps_ratio']:.2f}x with the "
            f"capture thread{workers_note(r)} ({'meets' if ratio >= 1.5 else 'MISSES'} >= 1.5x); "
            f"pre+post {r['edge_pre_post_pct_of_infer']:.1f} % of inference "
            f"({'meets' if r['edge_pre_post_pct_of_infer'] <= 10 else 'MISSES'} <= 10 %); "
            f"Ultralytics session: {r['ultralytics_session']}"
        )


def workers_note(r: dict[str, Any]) -> str:
    w = r.get("workers")
    return f", {w['fps_ratio']:.2f}x with {w['workers']} workers x {w['threads_per_worker']} threads" if w else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=VTEST, help="video to loop over (default: vtest.avi)")
    p.add_argument(
        "--run", type=Path, default=None, help=f"run directory with a manifest (default {DEMO_RUN})"
    )
    p.add_argument("--model", default="detector-onnx-fp32", help="model name in the run's manifest")
    p.add_argument("--onnx", type=Path, action="append", default=[], help="extra Ultralytics-exported ONNX")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[640],
        help="also export the run's detector.pt at these sizes (default 640; none: --sizes)",
    )
    p.add_argument("--work-dir", type=Path, default=None, help="export cache (default ~/.cache/cctvkit/bench)")
    p.add_argument("--frames", type=int, default=150, help="frames per loop per round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (ABBA order)")
    p.add_argument("--threads", type=int, default=default_threads(), help="ONNX Runtime intra-op threads")
    p.add_argument(
        "--workers", type=int, default=1,
        help="also run the daemon's worker pool (model.workers) with this many model instances (> 1)",
    )  # fmt: skip
    p.add_argument(
        "--worker-threads", type=int, default=None,
        help="runtime threads of each worker (model.threads; default: --threads // --workers, at least 1)",
    )  # fmt: skip
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument(
        "--ultralytics-session",
        choices=("matched", "default"),
        default="matched",
        help="matched: same ORT session options as edge; default: Ultralytics' own session",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.frames < 1 or args.rounds < 1 or args.threads < 1 or args.workers < 1:
        p.error("--frames, --rounds, --threads and --workers must be >= 1")
    if args.worker_threads is None:
        args.worker_threads = max(1, args.threads // args.workers)
    elif args.worker_threads < 1:
        p.error("--worker-threads must be >= 1")
    if args.run is None and not args.onnx:
        args.run = DEMO_RUN
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_video(args.video)
        cases: list[Case] = []
        if args.run is not None:
            first = run_case(args.run, args.model)
            cases.append(first)
            for size in args.sizes:
                if size != first.spec.imgsz[0]:
                    cases.append(exported_case(args.run, size, args.work_dir))
        cases += [onnx_case(p) for p in args.onnx]
        pool = f", edge+workers {args.workers} x {args.worker_threads} threads" if args.workers > 1 else ""
        console.print(f"video {args.video}, {args.frames} frames x {args.rounds} rounds per loop, "
                      f"{args.threads} threads{pool}, conf {args.conf}, iou {args.iou}")  # fmt: skip
        results = [bench_case(c, args) for c in cases]
    except CctvkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
