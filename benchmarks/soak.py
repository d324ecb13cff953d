"""Soak test of the daemon: `edge run` on looping vtest for --minutes, its resident memory sampled all along.

    .venv/bin/python benchmarks/soak.py                          # 30 min, the demo run's fp32 detector
    .venv/bin/python benchmarks/soak.py --minutes 2 --warmup 20 --pace max --run runs/x --model detector-onnx-int8

It writes an edge.yaml of its own (file source looping the video, JSONL + SQLite records with small
rotation limits so rotation happens, /metrics on a free loopback port), starts the real CLI
(`edge run --config FILE`) as a subprocess with a NOTIFY_SOCKET and WATCHDOG_USEC of its own (so the
READY=1 / WATCHDOG=1 path of the service runs too), samples the process's RSS with psutil every
--interval s and frames processed from /metrics, and ends with SIGTERM, timing the shutdown.

RSS growth = median of the last 3 samples against the median of the first 3 samples after --warmup (model
load, allocator arenas and runtime buffers settle in the first minute). Exit status 1 when growth >= 5 %
(issue 3's limit over 30 min), when the daemon dies, never becomes READY, or does not exit 0 within 2 s of
SIGTERM; 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import DEMO_RUN, VTEST, check_video
from _daemon import (
    GROWTH_LIMIT_PCT,
    STOP_LIMIT_S,
    NotifyListener,
    edge_command,
    free_port,
    mib,
    model_section,
    rss_growth,
    scrape,
    tree_rss,
    write_yaml,
)
from rich.console import Console

from edge.errors import CctvkitError

console = Console()


def write_config(args: argparse.Namespace, work: Path, port: int) -> Path:
    cfg = {
        "model": model_section(args.run, args.model, args.model_file, args.threads),
        "source": {"type": "file", "path": str(args.video.resolve()), "loop": True,
                   "realtime": args.pace == "native"},
        # max pace: every frame goes through the model, as fast as it can (the most iterations per minute).
        "capture": {"lossless": args.pace == "max"},
        "motion": {"enabled": args.motion},
        "records": {"jsonl": str(work / "records" / "events.jsonl"), "sqlite": str(work / "records" / "events.db"),
                    "rotate_mb": 1, "max_total_mb": 4, "keep": 3},
        "http": {"host": "127.0.0.1", "port": port},
        "watchdog": {"enabled": True},
        "log_level": "info",
    }  # fmt: skip
    return write_yaml(work / "edge.yaml", cfg)


def soak(args: argparse.Namespace, work: Path) -> int:
    port = free_port()
    config = write_config(args, work, port)
    listener = NotifyListener(work / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC=str(int(args.watchdog_s * 1e6)))
    env.pop("WATCHDOG_PID", None)
    log = (work / "daemon.log").open("w")
    cmd = edge_command(config)
    console.print(f"[bold]{' '.join(cmd)}[/]  (log: {work / 'daemon.log'})")
    child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(child.pid)
    failures: list[str] = []
    t_start = time.monotonic()
    while (
        listener.ready_at is None and child.poll() is None and time.monotonic() - t_start < args.ready_timeout
    ):
        listener.poll()
        time.sleep(0.05)
    if listener.ready_at is None:
        child.kill()
        child.wait()
        console.print((work / "daemon.log").read_text()[-3000:])
        console.print(f"[red]the daemon never sent READY=1 (exit code {child.returncode})[/]")
        return 1
    console.print(f"READY=1 after {listener.ready_at - t_start:.1f} s; soaking for {args.minutes:g} min")
    samples: list[tuple[float, int, dict[str, float]]] = []  # (seconds since READY, rss, metrics)
    end = listener.ready_at + args.minutes * 60
    next_sample = listener.ready_at
    while time.monotonic() < end:
        listener.poll()
        if child.poll() is not None:
            failures.append(f"the daemon exited with {child.returncode} during the soak")
            break
        now = time.monotonic()
        if now >= next_sample:
            with contextlib.suppress(psutil.NoSuchProcess):
                samples.append((now - listener.ready_at, tree_rss(proc), scrape(port)))
                t, rss, m = samples[-1]
                console.print(
                    f"  {t:7.0f} s  RSS {mib(rss):>10}  processed {m.get('frames_processed', float('nan')):.0f}"
                )
            next_sample += args.interval
        time.sleep(0.05)
    # Shutdown: SIGTERM must give exit 0 within 2 s (records flushed).
    stop_s = None
    if child.poll() is None:
        t0 = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_LIMIT_S + 8)
            stop_s = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            failures.append(f"no exit {STOP_LIMIT_S + 8:g} s after SIGTERM (killed)")
        if stop_s is not None and (child.returncode != 0 or stop_s > STOP_LIMIT_S):
            failures.append(
                f"SIGTERM -> exit {child.returncode} after {stop_s:.2f} s (want 0 within {STOP_LIMIT_S:g} s)"
            )
    listener.poll()
    log.close()
    return summarise(args, samples, listener, stop_s, failures, work)


def summarise(
    args: argparse.Namespace,
    samples: list[tuple[float, int, dict[str, float]]],
    listener: NotifyListener,
    stop_s: float | None,
    failures: list[str],
    work: Path,
) -> int:
    settled = [s for s in samples if s[0] >= args.warmup]
    if len(settled) < 6:
        failures.append(
            f"only {len(settled)} samples after the {args.warmup:g} s warm-up; need 6 (longer --minutes)"
        )
    console.rule("soak result")
    if samples:
        rss_all = [s[1] for s in samples]
        console.print(f"RSS first sample (before warm-up): {mib(rss_all[0])}, max {mib(max(rss_all))}")
    growth, start, end = rss_growth([(s[0], s[1]) for s in samples], args.warmup)
    if growth is not None:
        span = settled[-1][0] - settled[0][0]
        console.print(
            f"RSS after warm-up: start {mib(start)}, end {mib(end)}, max {mib(max(s[1] for s in settled))} "
            f"over {span / 60:.1f} min -> growth {growth:+.2f} % (limit < {GROWTH_LIMIT_PCT:g} %)"
        )
        if growth >= GROWTH_LIMIT_PCT:
            failures.append(f"RSS grew {growth:.2f} % (limit {GROWTH_LIMIT_PCT:g} %)")
    m0, m1 = (samples[0][2], samples[-1][2]) if samples else ({}, {})
    if "frames_processed" in m1 and samples[-1][0] > 0:
        done = m1["frames_processed"] - m0.get("frames_processed", 0.0)
        console.print(
            f"frames processed {m1['frames_processed']:.0f} ({done / (samples[-1][0] - samples[0][0] or 1):.1f} FPS), "
            f"captured {m1.get('frames_captured', 0):.0f}, dropped {m1.get('frames_dropped', 0):.0f}, "
            f"records written {m1.get('records_written', 0):.0f}, record errors {m1.get('record_errors', 0):.0f}"
        )
    gap = listener.max_gap()
    console.print(
        f"WATCHDOG=1 pings {len(listener.pings)}, longest gap "
        + (f"{gap:.2f} s" if gap is not None else "n/a")
        + f" (WatchdogSec {args.watchdog_s:g} s)"
    )
    if gap is None or gap >= args.watchdog_s:
        failures.append(
            f"watchdog pings missing or late (longest gap {gap}) for WatchdogSec {args.watchdog_s:g}"
        )
    if stop_s is not None:
        console.print(f"SIGTERM -> exit in {stop_s:.2f} s")
    records = sorted((work / "records").glob("*"))
    console.print(
        f"record files: {len(records)}, {mib(sum(p.stat().st_size for p in records if p.is_file()))}"
    )
    for f in failures:
        console.print(f"[red]FAIL[/] {f}")
    if not failures:
        console.print("[green]PASS[/]")
    return 1 if failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds after READY before the baseline")
    p.add_argument("--video", type=Path, default=VTEST)
    p.add_argument("--run", type=Path, default=DEMO_RUN, help="run directory with a manifest")
    p.add_argument("--model", default="detector-onnx-fp32", help="model name in the run's manifest")
    p.add_argument("--model-file", type=Path, default=None, help="a bare model file instead of --run/--model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--pace",
        choices=("native", "max"),
        default="native",
        help="native: the file's frame rate, like a camera; max: every frame, as fast as possible",
    )
    p.add_argument("--motion", action="store_true", help="enable the motion gate")
    p.add_argument("--watchdog-s", type=float, default=30.0, help="WATCHDOG_USEC given to the daemon")
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--keep", type=Path, default=None, help="keep config, log and records in this folder")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.warmup < 0:
        p.error("--minutes and --interval must be > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_video(args.video)
    except CctvkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return soak(args, args.keep.resolve())
    # A short path: the notify socket's path must fit in sun_path (108 bytes).
    with tempfile.TemporaryDirectory(prefix="cctvkit-soak-") as tmp:
        return soak(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
