"""Fault suite of the daemon: the real `edge run` attacked while it runs, each scenario a table of figures.

    .venv/bin/python benchmarks/faults.py                                  # all four, ~15 min
    .venv/bin/python benchmarks/faults.py --scenario flap --minutes 2 --run runs/demo --model detector-onnx-int8
    .venv/bin/python benchmarks/faults.py --scenario kill9 --kills 5 --model-file person.onnx --out faults.json

Scenarios (each starts `edge run --config FILE` as a subprocess with a NOTIFY_SOCKET and WATCHDOG_USEC of
its own, as benchmarks/soak.py does, and its own edge.yaml, records and log in a fresh folder):

  flap    an HTTP MJPEG camera on loopback (the `stream` source) that vanishes and comes back every
          --flap-s (10 s) for --minutes (10): reconnects, time from camera-back to the first frame
          processed, frames per up-phase, RSS growth, presence records (faults_flap.py)
  fullfs  JSONL + SQLite records on a 4 MB tmpfs that fills up, then gets space back: record errors,
          every JSONL line whole, SQLite integrity_check, records resuming (faults_fullfs.py; root)
  kill9   --kills (20) x start, records flowing, kill -9 at a random moment, every record read back:
          torn lines, SQLite rows lost against the <= flush_every_s batch, restart time (faults_kill9.py)
  idle    --connections (1000) idle TCP connections to /metrics during a run: threads, fds, CPU, scrape
          latency and frames/s before / during / after, watchdog pings, SIGTERM with them open
          (faults_idle.py)

Every scenario also requires: the daemon alive at its end, WATCHDOG=1 never later than WatchdogSec
(--watchdog-s, 6 s: a ping every 2 s), SIGTERM -> exit 0 within 2 s, every JSONL line parsing and every
SQLite file passing integrity_check. Exit status 1 when any pass condition fails, 2 on bad arguments (or
a model or video that cannot be used); a scenario that cannot run here (fullfs without root) is skipped
with its reason and fails nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import DEMO_RUN, VTEST, check_video, onnx_case, run_case
from _daemon import model_section
from faults_base import Outcome, Setup
from faults_flap import scenario_flap
from faults_fullfs import scenario_fullfs
from faults_idle import scenario_idle
from faults_kill9 import scenario_kill9
from rich.console import Console
from rich.table import Table

from edge.errors import CctvkitError

# Piped to a file or a log, rich would wrap the tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
SCENARIOS = ("flap", "fullfs", "kill9", "idle")


def run_scenario(name: str, args: argparse.Namespace, setup: Setup) -> Outcome:
    if name == "flap":
        return scenario_flap(setup, args.minutes, args.flap_s)
    if name == "fullfs":
        return scenario_fullfs(setup, args.fs_mb, args.free_kb, args.hold_s)
    if name == "kill9":
        return scenario_kill9(setup, args.kills)
    return scenario_idle(setup, args.connections, args.hold_s, args.daemon_nofile)


def show(out: Outcome) -> None:
    table = Table(title=f"{out.scenario}  ({out.seconds:.0f} s)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("limit / note", style="dim")
    for name, value, limit in out.figures:
        table.add_row(name, str(value), limit)
    console.print(table)
    if out.skipped is not None:
        console.print(f"[yellow]SKIPPED[/] {out.skipped}")
    for f in out.failures:
        console.print(f"[red]FAIL[/] {f}")
    if out.skipped is None and out.passed:
        console.print("[green]PASS[/]")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the flap scenario")
    p.add_argument("--flap-s", type=float, default=10.0, help="flap: seconds up, then seconds down")
    p.add_argument("--kills", type=int, default=20, help="kill9: kill -9 this many times")
    p.add_argument("--connections", type=int, default=1000, help="idle: idle TCP connections")
    p.add_argument("--daemon-nofile", type=int, default=1024,
                   help="idle: the daemon's soft RLIMIT_NOFILE (systemd's default for a service)")
    p.add_argument("--hold-s", type=float, default=30.0, help="fullfs: time full; idle: each phase")
    p.add_argument("--fs-mb", type=float, default=4.0, help="fullfs: size of the tmpfs")
    p.add_argument("--free-kb", type=float, default=128.0, help="fullfs: free space the filler leaves")
    p.add_argument("--video", type=Path, default=VTEST)
    p.add_argument("--run", type=Path, default=None, help=f"run directory with a manifest (default {DEMO_RUN})")
    p.add_argument("--model", default="detector-onnx-int8", help="model name in the run's manifest")
    p.add_argument("--model-file", type=Path, default=None, help="a bare detector ONNX instead of --run/--model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--watchdog-s", type=float, default=6.0, help="WATCHDOG_USEC given to the daemon")
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=None, help="kill9's random kill moments (default: random)")
    p.add_argument("--keep", type=Path, default=None, help="keep each scenario's config, log and records in DIR/<scenario> (emptied first)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    positive = {"--minutes": args.minutes, "--flap-s": args.flap_s, "--kills": args.kills,
                "--connections": args.connections, "--hold-s": args.hold_s, "--fs-mb": args.fs_mb,
                "--watchdog-s": args.watchdog_s, "--ready-timeout": args.ready_timeout, "--threads": args.threads,
                "--daemon-nofile": args.daemon_nofile}
    if bad := [k for k, v in positive.items() if v <= 0]:
        p.error(f"{', '.join(bad)} must be > 0")
    if args.free_kb < 0:
        p.error("--free-kb must be >= 0")
    if args.model_file is not None and args.run is not None:
        p.error("give either --run/--model or --model-file")
    if args.model_file is None and args.run is None:
        args.run = DEMO_RUN
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """The model and the video, checked before any daemon starts (CctvkitError: exit 2)."""
    check_video(args.video)
    if args.model_file is not None:
        if not args.model_file.is_file():
            raise CctvkitError("model file not found", args.model_file, "pass --model-file with an ONNX detector")
        onnx_case(args.model_file)
    else:
        run_case(args.run, args.model)  # the manifest, the model's sha256, an ONNX detector


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_inputs(args)
    except CctvkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    model = model_section(None if args.model_file else args.run, None if args.model_file else args.model,
                          args.model_file, args.threads)
    outcomes = []
    for name in names:
        console.rule(f"scenario {name}")
        # A short folder: the notify socket's path must fit in sun_path (108 bytes).
        with tempfile.TemporaryDirectory(prefix=f"cctvkit-{name}-") as tmp:
            work = Path(tmp) if args.keep is None else (args.keep / name).resolve()
            if args.keep is not None:
                shutil.rmtree(work, ignore_errors=True)  # records of an earlier run would be read as this one's
            work.mkdir(parents=True, exist_ok=True)
            setup = Setup(model, args.video, work, args.watchdog_s, args.ready_timeout, seed)
            t0 = time.monotonic()
            out = run_scenario(name, args, setup)
            out.seconds = time.monotonic() - t0
        show(out)
        outcomes.append(out)
    if len(outcomes) > 1:
        console.rule("summary")
        for o in outcomes:
            state = "SKIPPED" if o.skipped else ("PASS" if o.passed else f"FAIL ({len(o.failures)})")
            console.print(f"  {o.scenario:7s} {state}  {o.seconds:.0f} s")
    if args.out is not None:
        doc = {"seed": seed, "model": model, "video": str(args.video), "scenarios": [o.to_json() for o in outcomes]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
