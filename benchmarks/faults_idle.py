"""Fault scenario `idle`: --connections idle TCP connections to the daemon's /metrics port during a run.

They connect and never send a byte (a port scanner, a stuck scraper, a slow-loris). The daemon starts
with the soft RLIMIT_NOFILE systemd gives a service without LimitNOFILE= (--daemon-nofile, 1024), so
what happens at that limit happens here too; this script raises its own limit to hold the connections.

Three phases of --hold-s each, before / during / after the connections, each measured the same way:
frames processed per second (/metrics), the daemon's threads, open fds and CPU (psutil), /metrics scrape
latency (one scrape a second). Then the connections are opened again and the daemon gets its SIGTERM
with them open.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import statistics
import time
from typing import Any

import psutil
from _daemon import EdgeDaemon, timed_scrape
from faults_base import Outcome, Setup, edge_config, finish, start_ready, vtest_source
from rich.console import Console

console = Console()
SCRAPE_LIMIT_S = 1.0
FPS_RATIO_MIN = 0.9  # frames/s during the connections, against before
CONNECT_WAIT_S = 15.0
CONNECT_RATE = 200.0  # connections opened a second


def raise_own_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_idle(port: int, n: int, rate: float) -> tuple[list[socket.socket], int]:
    """n connects to 127.0.0.1:port, `rate` a second (all at once overflow the listen backlog: the kernel
    then holds the rest half-open and the daemon sees them only as SYN-ACK retries trickle in); (the
    sockets, how many completed the handshake within CONNECT_WAIT_S of the last)."""
    socks, pending = [], {}
    t0 = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        code = s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        if code in (errno.EINPROGRESS, errno.EAGAIN):
            pending[s.fileno()] = s
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    deadline = time.monotonic() + CONNECT_WAIT_S
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            poller.unregister(fd)
            pending.pop(fd, None)
    connected = sum(s.fileno() not in pending and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    for s in socks)
    return socks, connected


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


def measure(daemon: EdgeDaemon, port: int, seconds: float) -> dict[str, Any]:
    """Frames/s, threads, fds, CPU % and scrape latencies over `seconds`."""
    assert daemon.proc is not None
    with contextlib.suppress(psutil.NoSuchProcess):
        daemon.proc.cpu_percent(None)
    lat, failed, threads, fds = [], 0, [], []
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    t0 = time.monotonic()
    t_first = t_last = t0
    while time.monotonic() - t0 < seconds and daemon.alive:
        s, m = timed_scrape(port, timeout=5.0)
        if m:
            lat.append(s)
            if not first:
                first, t_first = m, time.monotonic()
            last, t_last = m, time.monotonic()
        else:
            failed += 1
        threads.append(daemon.threads() or 0)
        fds.append(daemon.fds() or 0)
        daemon.sleep(max(0.0, 1.0 - s))
    cpu = None
    with contextlib.suppress(psutil.NoSuchProcess):
        cpu = daemon.proc.cpu_percent(None)
    span = t_last - t_first
    fps = (last.get("frames_processed", 0) - first.get("frames_processed", 0)) / span if span > 0 else None
    return {"fps": fps, "threads": max(threads, default=None), "fds": max(fds, default=None), "cpu": cpu,
            "scrapes": len(lat), "failed": failed, "lat_med": statistics.median(lat) if lat else None,
            "lat_max": max(lat, default=None), "record_errors": last.get("record_errors")}


def scenario_idle(setup: Setup, connections: int, hold_s: float, daemon_nofile: int) -> Outcome:
    out = Outcome("idle")
    work, records = setup.work, setup.work / "records"
    own = raise_own_nofile(connections + 256)
    out.add("connections / daemon soft RLIMIT_NOFILE / script's", f"{connections} / {daemon_nofile} / {own}")
    config, port = edge_config(setup, work, vtest_source(setup), records)
    daemon = EdgeDaemon(config, work, watchdog_s=setup.watchdog_s, nofile=daemon_nofile)
    socks: list[socket.socket] = []
    try:
        if start_ready(daemon, setup, out) is None:
            return out
        daemon.sleep(10.0)  # model warm, the first frames through
        console.print(f"  measuring {hold_s:g} s before")
        before = measure(daemon, port, hold_s)
        socks, connected = open_idle(port, connections, CONNECT_RATE)
        out.add(f"idle connections completed (opened {CONNECT_RATE:g}/s)", f"{connected} of {connections}")
        console.print(f"  {connected} idle connections open; measuring {hold_s:g} s during")
        since = time.monotonic()
        during = measure(daemon, port, hold_s)
        close_all(socks)
        daemon.sleep(5.0)
        console.print(f"  closed; measuring {hold_s:g} s after")
        after = measure(daemon, port, hold_s)
        report(out, before, during, after)
        gap = daemon.listener.max_gap(since) if daemon.listener else None
        out.add("longest WATCHDOG=1 gap during + after (s)", None if gap is None else round(gap, 2),
                f"< {setup.watchdog_s:g}")
        # SIGTERM with the connections open again: the stop must not wait for them.
        socks, connected = open_idle(port, connections, CONNECT_RATE)
        out.add("connections open at SIGTERM", connected)
        finish(daemon, out, records)
    finally:
        close_all(socks)
        daemon.close()
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def report(out: Outcome, before: dict[str, Any], during: dict[str, Any], after: dict[str, Any]) -> None:
    phases = (before, during, after)
    out.add("frames processed/s: before / during / after", " / ".join(_fmt(p["fps"]) for p in phases),
            f"during >= {FPS_RATIO_MIN:g} x before")
    if before["fps"] and during["fps"] is not None:
        out.check(during["fps"] >= FPS_RATIO_MIN * before["fps"],
                  f"the loop slowed: {during['fps']:.2f} frames/s during against {before['fps']:.2f} before")
    else:
        out.check(False, "frames processed/s not measured (no scrape succeeded)")
    out.add("daemon threads (max): before / during / after", " / ".join(_fmt(p["threads"]) for p in phases),
            "after <= before + 5")
    out.add("daemon open fds (max): before / during / after", " / ".join(_fmt(p["fds"]) for p in phases),
            "after <= before + 5")
    for what in ("threads", "fds"):
        if before[what] is not None and after[what] is not None:
            out.check(after[what] <= before[what] + 5, f"{what} did not come back: {before[what]} -> {after[what]}")
    out.add("daemon CPU %: before / during / after", " / ".join(_fmt(p["cpu"], 0) for p in phases))
    out.add("/metrics scrapes ok / failed during", f"{during['scrapes']} / {during['failed']}", "0 failed")
    out.check(during["failed"] == 0, f"{during['failed']} /metrics scrapes failed during the idle connections")
    out.add("/metrics latency median / max (s): before", f"{_fmt(before['lat_med'], 3)} / {_fmt(before['lat_max'], 3)}")
    out.add("/metrics latency median / max (s): during", f"{_fmt(during['lat_med'], 3)} / {_fmt(during['lat_max'], 3)}",
            f"max < {SCRAPE_LIMIT_S:g}")
    if during["lat_max"] is not None:
        out.check(during["lat_max"] < SCRAPE_LIMIT_S, f"a /metrics scrape took {during['lat_max']:.2f} s during")
    out.add("record errors: before / during / after", " / ".join(_fmt(p["record_errors"], 0) for p in phases))
