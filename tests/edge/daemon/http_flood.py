"""Helpers of the HTTP limit tests: the metrics server alone in a child process (so its threads and fds
are its own, and the flood does not share its GIL), and a flood of idle connections that reconnects each
one the server drops, so the server sees a new connection for every one it lets go."""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[3]
CHILD = """
import sys
from edge.httpd import MetricsServer
server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\\n", lambda: (True, {}))
server.start()
print(server.port, flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


class ServerProcess:
    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                              if p))
        self.child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.child.stdout is not None
        self.port = int(self.child.stdout.readline())
        self.proc = psutil.Process(self.child.pid)

    def threads(self) -> int:
        return self.proc.num_threads()

    def fds(self) -> int:
        return self.proc.num_fds()

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        try:
            self.child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()


class IdleFlood:
    """`n` connections to 127.0.0.1:port that never send a byte; one the server closes is replaced at once
    (at most `rate` new connections a second)."""

    def __init__(self, port: int, n: int, rate: float = 1000.0):
        self.port, self.n, self.rate = port, n, rate
        self.connects = self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def __enter__(self) -> IdleFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                while len(sel.get_map()) < self.n and self.connects < (time.monotonic() - t0) * self.rate:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    if s.connect_ex(("127.0.0.1", self.port)) not in (0, errno.EINPROGRESS, errno.EAGAIN):
                        s.close()
                        break
                    sel.register(s, selectors.EVENT_READ)  # readable: the server closed or reset it
                    self.connects += 1
                for key, _ in sel.select(0.01):
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    self.dropped += 1
        finally:
            for key in list(sel.get_map().values()):
                with contextlib.suppress(OSError):
                    key.fileobj.close()  # type: ignore[union-attr]
            sel.close()
