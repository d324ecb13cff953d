"""The daemon's HTTP endpoint on its own thread: /metrics (Prometheus text) and /healthz.

Loopback by default: the metrics say when people are in view, which is not for the whole LAN.

Hostile or broken clients cannot take the daemon down (issue 14: 1,000 idle connections had made 400
threads and used up the file descriptors the camera and records need). As Prometheus' exporter-toolkit
does: at most MAX_CONNECTIONS are served at once, each on its own thread; one beyond that is closed at
once, never queued; a client that sends nothing (or half a request) for READ_TIMEOUT_S is dropped, so a
scraper gets through at worst that long after a flood. Responses carry no version banner, and a 500 says
only "internal error" (the exception goes to the log).

server = MetricsServer("127.0.0.1", 9108, metrics.exposition, health)   # port 0 picks a free one
server.start(); server.port; server.stop()
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from edge.errors import CctvkitError

log = logging.getLogger(__name__)

# health() -> (healthy, details): details become the JSON body, with "reason" when unhealthy
HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
MAX_CONNECTIONS = 16  # a scraper or two and a health check need a handful; the rest is an attack
READ_TIMEOUT_S = 3.0  # a whole request line + headers must arrive within this (a scrape takes ms)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that never finishes its request must not block shutdown
    allow_reuse_address = True
    request_queue_size = MAX_CONNECTIONS  # the kernel's accept backlog, bounded too

    def __init__(self, *args: Any, **kwargs: Any):
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Refuse beyond the cap here, on the accepting thread, before a thread or a buffer is spent on it.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    def __init__(self, host: str, port: int, metrics: Callable[[], bytes], health: HealthFn):
        self.host, self.requested_port = host, port
        self.metrics, self.health = metrics, health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "cctvkit-edge"  # no version numbers: nothing for a scanner to match
            sys_version = ""
            timeout = READ_TIMEOUT_S  # socket timeout of each connection: idle clients are dropped

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        self._send(200, outer.metrics(), CONTENT_TYPE_LATEST)
                    elif path == "/healthz":
                        ok, details = outer.health()
                        body = json.dumps({"status": "ok" if ok else "unhealthy", **details}).encode() + b"\n"
                        self._send(200 if ok else 503, body, "application/json")
                    else:
                        self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")
                except Exception:  # a broken collector must not kill the server thread
                    log.exception("http: %s failed", path)
                    self._send(500, b"internal error\n", "text/plain")

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("http: " + format, *args)

        return Handler

    def start(self) -> None:
        try:
            self._server = _Server((self.host, self.requested_port), self._handler())
        except OSError as e:
            raise CctvkitError(
                f"cannot listen on {self.host}:{self.requested_port} ({e.strerror or e})",
                fix="pick a free http.port in the config (or 0 for any) or stop what holds it",
            ) from e
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
