"""The metrics server under idle connections: figures, not a test (issue 14 row 1).

    .venv/bin/python benchmarks/http_idle_connections.py                      # 1,000 idle, 20 s a phase
    .venv/bin/python benchmarks/http_idle_connections.py --connections 300 --hold-s 10 --json out.json
    .venv/bin/python benchmarks/http_idle_connections.py --checkout /path/to/main   # another edge/, to compare

edge/httpd.py's MetricsServer alone in a child process (its threads and fds are its own; the flood does not
share its GIL). Three phases of --hold-s: before, during --connections idle connections, after. The idle
ones are opened as faults_idle.py opens them (--rate a second); during the phase each one the server drops
is reconnected at once (at most --rate a second), so the flood never lets up. Each phase scrapes /metrics
every --every-s: success rate, latency p50 / p99 / max, the server's threads and open fds (max).
For the whole daemon under the same flood (frames/s, watchdog, SIGTERM) run `faults.py --scenario idle`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _daemon import ROOT, timed_scrape
from faults_idle import close_all, open_idle, raise_own_nofile
from rich.console import Console
from rich.table import Table

console = Console()
CHILD = """
import sys
from edge.httpd import MetricsServer
# A counter _daemon.parse_metrics reads: its scrape() returns {} exactly when a scrape failed.
server = MetricsServer("127.0.0.1", 0, lambda: b"cctvkit_frames_processed_total 1\\n", lambda: (True, {}))
server.start()
print(server.port, flush=True)
sys.stdin.read()
print(getattr(server, "evicted", "n/a"), flush=True)  # older checkouts do not count evictions
server.stop()
"""


class Server:
    def __init__(self, checkout: Path):
        env = dict(os.environ, PYTHONPATH=str(checkout))
        self.child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=env, cwd=checkout, text=True)
        assert self.child.stdout is not None
        self.port = int(self.child.stdout.readline())
        self.proc = psutil.Process(self.child.pid)

    def close(self) -> str:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.close()
        evicted = self.child.stdout.readline().strip()
        self.child.wait(timeout=10)
        return evicted


class Refill(threading.Thread):
    """Reconnects each of `socks` the server closes (readable with nothing to read), at most `rate` a second."""

    def __init__(self, port: int, socks: list[socket.socket], rate: float):
        super().__init__(name="refill", daemon=True)
        self.port, self.socks, self.rate = port, socks, rate
        self.index = {s: i for i, s in enumerate(socks)}
        self.reconnects = 0
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            for s in self._dropped():
                while self.reconnects >= (time.monotonic() - t0) * self.rate and not self.stop.is_set():
                    time.sleep(0.001)
                if self.stop.is_set():
                    break
                with contextlib.suppress(OSError):
                    s.close()
                fresh = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                fresh.setblocking(False)
                if fresh.connect_ex(("127.0.0.1", self.port)) not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    fresh.close()
                    continue
                self.socks[self.index[s]] = fresh
                self.index[fresh] = self.index.pop(s)
                self.reconnects += 1

    def _dropped(self) -> list[socket.socket]:
        # poll(), not select(): the idle sockets' fds go past 1024.
        poller = select.poll()
        by_fd = {s.fileno(): s for s in self.socks if s.fileno() >= 0}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        return [by_fd[fd] for fd, _ in poller.poll(50)]


def measure(server: Server, seconds: float, every: float) -> dict[str, Any]:
    lat, failed, threads, fds = [], 0, [], []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        took, counters = timed_scrape(server.port, timeout=5.0)
        if counters:
            lat.append(took)
        else:
            failed += 1
        threads.append(server.proc.num_threads())
        fds.append(server.proc.num_fds())
        time.sleep(max(0.0, every - took))
    lat.sort()
    n = len(lat) + failed
    return {"scrapes": n, "ok": len(lat), "success_pct": 100 * len(lat) / n if n else None,
            "p50_s": statistics.median(lat) if lat else None,
            "p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "max_s": lat[-1] if lat else None, "threads_max": max(threads), "fds_max": max(fds)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--hold-s", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--every-s", type=float, default=0.2, help="one scrape this often")
    ap.add_argument("--rate", type=float, default=200.0, help="idle connections opened / reconnected a second")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose edge/ is measured")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    own = raise_own_nofile(args.connections + 256)
    server = Server(args.checkout.resolve())
    socks: list[socket.socket] = []
    try:
        console.print(f"server pid {server.proc.pid} on port {server.port} ({args.checkout}); own fd limit {own}")
        before = measure(server, args.hold_s, args.every_s)
        socks, connected = open_idle(server.port, args.connections, args.rate)
        console.print(f"{connected} of {args.connections} idle connections completed the handshake")
        refill = Refill(server.port, socks, args.rate)
        refill.start()
        during = measure(server, args.hold_s, args.every_s)
        refill.stop.set()
        refill.join()
        close_all(socks)
        time.sleep(1.0)
        after = measure(server, args.hold_s, args.every_s)
    finally:
        close_all(socks)
        evicted = server.close()
    phases = {"before": before, "during": during, "after": after}
    table = Table(title=f"/metrics under {args.connections} idle connections ({refill.reconnects} reconnects"
                        f" during, {evicted} evicted by the server)")
    table.add_column("phase")
    for col in ("scrapes ok", "p50 ms", "p99 ms", "max ms", "threads max", "fds max"):
        table.add_column(col, justify="right")
    for name, p in phases.items():
        ms = ["n/a" if p[k] is None else f"{1000 * p[k]:.1f}" for k in ("p50_s", "p99_s", "max_s")]
        table.add_row(name, f"{p['ok']}/{p['scrapes']} ({p['success_pct']:.0f}%)", *ms, str(p["threads_max"]),
                      str(p["fds_max"]))
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"connections": args.connections, "rate": args.rate,
                                         "reconnects": refill.reconnects, "evicted": evicted, **phases}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
