"""The daemon's HTTP endpoint on its own thread: /metrics (Prometheus text) and /healthz.

Loopback by default: the metrics say when people are in view, which is not for the whole LAN. Another
address needs `http.expose: true` and basic auth in the config, TLS optionally (edge/httpauth.py).

Hostile or broken clients cannot take the daemon down (issue 14: 1,000 idle connections had made 400
threads and used up the file descriptors the camera and records need). At most MAX_CONNECTIONS are held
at once, each on its own thread. When one more arrives, the OLDEST held connection that has not yet sent
its whole request (request line + headers) is dropped to make room, as robust servers shed slow-loris
clients; only when every held connection is being served is the new one closed. A scraper sends its
request as soon as it connects, so it is never the oldest for long: 1,000 idle connections cannot lock it
out (a refusing cap had let them hold every slot: 2 of 30 scrapes failed). Any connection whose request
is not complete READ_TIMEOUT_S after it was accepted is dropped too.

Thread per connection with eviction rather than a selector loop feeding a worker pool: both bound the
threads (here MAX_CONNECTIONS, plus for a moment the ones just evicted), but this keeps http.server's
request parsing and does the TLS handshake on the connection's own thread with a plain blocking timeout,
where a selector loop would need a non-blocking handshake and its own HTTP framing: more code to get
wrong for no fewer threads at this cap.

Responses carry no version banner, and a 500 says only "internal error" (the exception goes to the log).

server = MetricsServer("127.0.0.1", 9108, metrics.exposition, health)   # port 0 picks a free one
server.start(); server.port; server.stop()
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from edge.config import HttpConfig
from edge.errors import CctvkitError
from edge.httpauth import BasicAuth, server_tls_context

log = logging.getLogger(__name__)

# health() -> (healthy, details): details become the JSON body, with "reason" when unhealthy
HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
MAX_CONNECTIONS = 16  # a scraper or two and a health check need a handful; the rest is an attack
READ_TIMEOUT_S = 3.0  # a whole request line + headers must arrive within this (a scrape takes ms)
# The kernel's accept queue: connections waiting there cost no fd of ours, and a deep one lets a scrape's
# connect complete behind a burst of flood connects instead of having its SYN dropped (1 s retry).
ACCEPT_BACKLOG = 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that never finishes its request must not block shutdown
    allow_reuse_address = True
    request_queue_size = ACCEPT_BACKLOG

    def __init__(self, *args: Any, **kwargs: Any):
        self._lock = threading.Lock()
        # Held connections, oldest first (dicts keep insertion order): socket -> [accepted at, request in]
        self._held: dict[Any, list[Any]] = {}
        self.evicted = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        # On the accepting thread, before a thread is spent on it: make room or refuse.
        victim = None
        with self._lock:
            if len(self._held) >= MAX_CONNECTIONS:
                victim = next((s for s, (_, ready) in self._held.items() if not ready), None)
                if victim is None:  # every slot is serving a request: those end in milliseconds
                    self.shutdown_request(request)
                    return
                del self._held[victim]
                self.evicted += 1
            self._held[request] = [time.monotonic(), False]
        if victim is not None:
            _wake(victim)
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._lock:
                self._held.pop(request, None)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._held.pop(request, None)

    def request_in(self, request: Any) -> None:
        """The handler has the whole request: from now on the connection is being served, not evictable."""
        with self._lock:
            if request in self._held:
                self._held[request][1] = True

    def service_actions(self) -> None:
        # serve_forever calls this every poll interval: the whole-request deadline, however slowly a
        # client trickles bytes in (the socket timeout alone restarts with every byte).
        late = []
        deadline = time.monotonic() - READ_TIMEOUT_S
        with self._lock:
            for s, (since, ready) in list(self._held.items()):
                if not ready and since < deadline:
                    del self._held[s]
                    late.append(s)
        for s in late:
            _wake(s)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A reset, a failed TLS handshake, an evicted client: routine on an exposed port, not a traceback.
        log.debug("http: connection from %s ended: %s", client_address[0], _current_error())


def _wake(sock: Any) -> None:
    """Drop a connection that its own thread is blocked reading: shutdown() makes that read return at once
    and the thread closes the socket (closing it here could close an fd number already reused). The plain
    socket's shutdown also for TLS: SSLSocket.shutdown would tear its TLS state from under that thread."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _current_error() -> str:
    e = sys.exc_info()[1]
    return f"{type(e).__name__}: {e}" if e is not None else "?"


def make_metrics_server(cfg: HttpConfig, metrics: Callable[[], bytes], health: HealthFn) -> MetricsServer:
    """The server of the config's `http:` section, with its basic auth and TLS when set."""
    auth = BasicAuth(cfg.basic_auth.user, cfg.basic_auth.password_hash) if cfg.basic_auth else None
    tls = server_tls_context(cfg.tls.cert_file, cfg.tls.key_file) if cfg.tls else None
    return MetricsServer(cfg.host, cfg.port, metrics, health, auth=auth, tls=tls)


class MetricsServer:
    def __init__(self, host: str, port: int, metrics: Callable[[], bytes], health: HealthFn,
                 auth: BasicAuth | None = None, tls: ssl.SSLContext | None = None):
        self.host, self.requested_port = host, port
        self.metrics, self.health = metrics, health
        self.auth, self.tls = auth, tls
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "cctvkit-edge"  # no version numbers: nothing for a scanner to match
            sys_version = ""
            timeout = READ_TIMEOUT_S  # socket timeout of each connection: idle clients are dropped

            def setup(self) -> None:
                super().setup()  # sets the timeout, which the handshake below runs under
                if isinstance(self.connection, ssl.SSLSocket):
                    self.connection.do_handshake()  # here, not in accept(): a slow client stalls only itself

            def parse_request(self) -> bool:
                ok = super().parse_request()  # reads the headers too
                if ok:
                    outer_server = self.server
                    assert isinstance(outer_server, _Server)
                    outer_server.request_in(self.request)
                return ok

            def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if outer.auth is not None and not outer.auth.check(self.headers.get("Authorization")):
                    self._send(401, b"unauthorized\n", "text/plain", {"WWW-Authenticate": outer.auth.challenge})
                    return
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
        if self.tls is not None:
            # Every accepted connection comes out as TLS; its handshake waits for the handler (setup above).
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True,
                                                       do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def evicted(self) -> int:
        """Connections dropped to make room for a newer one, since start()."""
        return self._server.evicted if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
