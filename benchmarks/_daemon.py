"""Shared by soak.py and the fault suite (faults*.py): the real `edge run` as a subprocess, its sd_notify
socket, its /metrics, and the process figures psutil reads (RSS, threads, open files).

    daemon = EdgeDaemon(config, work, watchdog_s=6)
    daemon.start(); daemon.wait_ready(120)       # seconds from Popen to READY=1, or None
    scrape(port)["frames_processed"]; daemon.threads(); daemon.fds()
    code, seconds = daemon.stop()                # SIGTERM, timed; or daemon.kill9()
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import yaml

# Counters of /metrics the benchmarks read (cctvkit_<name>_total), and gauges (cctvkit_<name>).
COUNTERS = ("frames_processed", "frames_captured", "frames_dropped", "frames_corrupt", "records_written",
            "record_errors", "camera_reconnects")
GAUGES = ("camera_connected",)
ROOT = Path(__file__).resolve().parents[1]


STOP_LIMIT_S = 2.0  # SIGTERM -> exit 0 within this (issue 3, the systemd unit's contract)
GROWTH_LIMIT_PCT = 5.0  # RSS growth limit of the soak (issue 3's, over 30 min)


def rss_growth(samples: list[tuple[float, int]], warmup_s: float) -> tuple[float | None, float, float]:
    """Median of the last 3 RSS samples against the median of the first 3 after the warm-up (model load,
    allocator arenas and runtime buffers settle first); (growth %, start, end), growth None with fewer than
    6 samples after the warm-up."""
    settled = [rss for t, rss in samples if t >= warmup_s]
    if len(settled) < 6:
        return None, 0.0, 0.0
    start, end = statistics.median(settled[:3]), statistics.median(settled[-3:])
    return 100 * (end - start) / start, start, end


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def edge_command(config: Path) -> list[str]:
    """The venv's `edge` console script (what the systemd unit runs), else the module."""
    script = Path(sys.executable).parent / "edge"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "run", "--config", str(config)]
    return [sys.executable, "-m", "edge.cli", "run", "--config", str(config)]


def tree_rss(proc: psutil.Process) -> int:
    """RSS of the daemon and any children it started (vcgencmd is short-lived; a leak could hide there)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for name in COUNTERS:
        if m := re.search(rf"^cctvkit_{name}_total (\S+)$", text, re.M):
            out[name] = float(m.group(1))
    for name in GAUGES:
        if m := re.search(rf"^cctvkit_{name} (\S+)$", text, re.M):
            out[name] = float(m.group(1))
    return out


def scrape(port: int, timeout: float = 2.0) -> dict[str, float]:
    """The counters of /metrics; {} when the scrape fails (refused, timed out)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return parse_metrics(text)


def timed_scrape(port: int, timeout: float = 5.0) -> tuple[float, dict[str, float]]:
    """(seconds the scrape took, its counters; {} when it failed)."""
    t0 = time.perf_counter()
    out = scrape(port, timeout)
    return time.perf_counter() - t0, out


# Linux's SO_TIMESTAMP (= SCM_TIMESTAMP; Python does not export it): the kernel stamps each datagram with
# its arrival time, so a ping is timed right even when the reader was busy (a slow scrape) when it came.
SO_TIMESTAMP = 29
TIMEVAL = struct.Struct("@ll")


class NotifyListener:
    """The receiving end of sd_notify: a unix datagram socket, as systemd's own."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path.unlink(missing_ok=True)  # left over from an earlier --keep run
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.stamped = sys.platform == "linux"
        if self.stamped:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
            except OSError:
                self.stamped = False
        self.ready_at: float | None = None
        self.pings: list[float] = []

    def _arrival(self, ancdata: list[tuple[int, int, bytes]]) -> float:
        """The datagram's arrival as a monotonic time (the kernel's wall-clock stamp moved onto it)."""
        now = time.monotonic()
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(data) >= TIMEVAL.size:
                sec, usec = TIMEVAL.unpack_from(data)
                return min(now, now - (time.time() - (sec + usec / 1e6)))
        return now

    def poll(self) -> None:
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(TIMEVAL.size))
            except BlockingIOError:
                return
            at = self._arrival(ancdata)
            for line in data.decode(errors="replace").splitlines():
                if line == "READY=1" and self.ready_at is None:
                    self.ready_at = at
                elif line == "WATCHDOG=1":
                    self.pings.append(at)

    def max_gap(self, since: float | None = None) -> float | None:
        """The longest time between two WATCHDOG=1 pings (from `since` on, a monotonic time)."""
        pings = [p for p in self.pings if since is None or p >= since]
        if len(pings) < 2:
            return None
        return max(b - a for a, b in zip(pings, pings[1:], strict=False))

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def write_yaml(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def model_section(run: Path | None, name: str | None, model_file: Path | None, threads: int) -> dict[str, object]:
    """edge.yaml's `model:` for a run's model (manifest + name) or a bare model file."""
    model: dict[str, object] = {"threads": threads}
    if model_file is not None:
        model["file"] = str(model_file.resolve())
    else:
        assert run is not None and name is not None
        model |= {"manifest": str(run.resolve()), "name": name}
    return model


class EdgeDaemon:
    """`edge run --config FILE` with a NOTIFY_SOCKET and WATCHDOG_USEC of its own (the service's READY=1 and
    WATCHDOG=1 paths run). The log of every start is appended to `log`. nofile: the soft RLIMIT_NOFILE the
    daemon starts with (systemd gives a service 1024 unless LimitNOFILE= says otherwise)."""

    def __init__(self, config: Path, work: Path, *, watchdog_s: float = 30.0, nofile: int | None = None,
                 log: Path | None = None):
        self.config, self.work, self.watchdog_s, self.nofile = config, work, watchdog_s, nofile
        self.log_path = log or work / "daemon.log"
        self.listener: NotifyListener | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.proc: psutil.Process | None = None
        self.started_at = 0.0
        self.starts = 0

    def start(self) -> None:
        if self.listener is not None:
            self.listener.close()
        # A short path: the notify socket's path must fit in sun_path (108 bytes).
        self.listener = NotifyListener(self.work / "notify.sock")
        # PYTHONPATH: the daemon runs the edge/ of the checkout this script is in, not whichever checkout
        # the venv's editable install points at.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, NOTIFY_SOCKET=str(self.listener.path),
                   WATCHDOG_USEC=str(int(self.watchdog_s * 1e6)), PYTHONUNBUFFERED="1", PYTHONPATH=path)
        env.pop("WATCHDOG_PID", None)
        nofile = self.nofile

        def limit_files() -> None:
            assert nofile is not None
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts + 1}: {' '.join(edge_command(self.config))}\n".encode())
            log.flush()
            self.started_at = time.monotonic()
            self.child = subprocess.Popen(edge_command(self.config), env=env, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          preexec_fn=limit_files if nofile is not None else None)
        self.proc = psutil.Process(self.child.pid)
        self.starts += 1

    def poll(self) -> None:
        if self.listener is not None:
            self.listener.poll()

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.child is None else self.child.poll()

    def wait_ready(self, timeout: float) -> float | None:
        """Seconds from start() to READY=1; None when the daemon died or timed out first (then it is killed)."""
        assert self.listener is not None
        while self.alive and time.monotonic() - self.started_at < timeout:
            self.listener.poll()
            if self.listener.ready_at is not None:
                return self.listener.ready_at - self.started_at
            time.sleep(0.02)
        if self.alive:
            self.kill9()
        return None

    def sleep(self, seconds: float) -> None:
        """Sleep while reading the notify socket (watchdog pings keep their own time stamps)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.poll()
            time.sleep(min(0.05, left))

    def rss(self) -> int | None:
        try:
            return tree_rss(self.proc) if self.proc is not None else None
        except psutil.NoSuchProcess:
            return None

    def threads(self) -> int | None:
        try:
            return self.proc.num_threads() if self.proc is not None else None
        except psutil.NoSuchProcess:
            return None

    def fds(self) -> int | None:
        try:
            return self.proc.num_fds() if self.proc is not None else None
        except psutil.NoSuchProcess:
            return None

    def stop(self, timeout: float = 10.0) -> tuple[int | None, float | None]:
        """SIGTERM; (exit code, seconds to exit), (None, None) when it had to be killed after `timeout`."""
        if self.child is None:
            return None, None
        if not self.alive:
            return self.child.returncode, 0.0
        t0 = time.monotonic()
        self.child.send_signal(signal.SIGTERM)
        try:
            self.child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None, None
        self.poll()
        return self.child.returncode, time.monotonic() - t0

    def kill9(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        self.kill9()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
