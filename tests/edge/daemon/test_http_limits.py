"""The metrics endpoint under hostile clients: idle connections, a broken collector, banner grabbing.

Issue 14 rows 1 and 13: 1,000 idle TCP connections had made 400 threads and exhausted the daemon's file
descriptors, then a refusing cap let idle clients hold every slot (2 of 30 scrapes failed); responses named
the Python version and echoed exception text.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

from http_flood import IdleFlood, ServerProcess

from edge.httpd import MAX_CONNECTIONS, READ_TIMEOUT_S, MetricsServer


def scrape(port: int) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=READ_TIMEOUT_S + 5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def http_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name != "http" and t is not threading.main_thread()
               and not t.name.startswith(("pytest", "Dummy")))


def test_idle_connections_are_capped_evicted_for_a_scrape_and_timed_out():
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}))
    server.start()
    idle: list[socket.socket] = []
    try:
        before = http_threads()
        for _ in range(4 * MAX_CONNECTIONS):  # idle clients: connect, send nothing
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            idle.append(s)
        time.sleep(0.5)
        # One handler thread per held connection at most; older idle ones were evicted for newer ones.
        assert http_threads() - before <= MAX_CONNECTIONS
        assert server.evicted >= 3 * MAX_CONNECTIONS
        # The idle ones hold every slot, yet a scrape gets through at once: the oldest idle one makes room.
        t0 = time.monotonic()
        code, body, _ = scrape(server.port)
        assert code == 200 and body == b"up 1\n"
        assert time.monotonic() - t0 < 1.0
        # Every idle connection has been closed by the server by now (recv returns b"" or a reset).
        time.sleep(READ_TIMEOUT_S + 0.5)
        closed = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == len(idle)
        assert http_threads() - before <= 1
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_slow_loris_is_dropped_after_the_whole_request_deadline():
    # The socket timeout restarts with every byte; the whole request has READ_TIMEOUT_S from accept.
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}))
    server.start()
    try:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        t0 = time.monotonic()
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        dropped = None
        while time.monotonic() - t0 < READ_TIMEOUT_S + 3:
            try:
                s.sendall(b"X-a: b\r\n")
                s.settimeout(0.5)
                if s.recv(1) == b"":
                    dropped = time.monotonic() - t0
                    break
            except TimeoutError:
                continue
            except OSError:
                dropped = time.monotonic() - t0
                break
        s.close()
        assert dropped is not None and dropped <= READ_TIMEOUT_S + 1.0, dropped
    finally:
        server.stop()


def test_no_version_banner_and_no_exception_text_in_a_500():
    def broken() -> bytes:
        raise RuntimeError("secret internals /etc/cctvkit/edge.yaml")

    server = MetricsServer("127.0.0.1", 0, broken, lambda: (True, {}))
    server.start()
    try:
        code, body, headers = scrape(server.port)
        assert code == 500
        assert body == b"internal error\n"
        assert "Python" not in headers.get("Server", "") and "BaseHTTP" not in headers.get("Server", "")
    finally:
        server.stop()


def test_no_version_banner_on_any_response_http_server_itself_writes():
    # 404 is ours; 501 (an unsupported method), 505 (a version) and 400 (a malformed request line) come
    # from http.server's send_error, with its own page: none may name Python or http.server.
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}))
    server.start()
    try:
        for request in (b"GET /nope HTTP/1.0\r\n\r\n", b"POST /metrics HTTP/1.0\r\n\r\n",
                        b"BOGUS\r\n\r\n", b"BOGUS /metrics HTTP/1.0\r\n\r\n",
                        b"GET /metrics HTTP/9.9\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(request)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            assert b"Python" not in reply and b"BaseHTTP" not in reply, reply
            if not reply.startswith(b"HTTP/"):  # an HTTP/0.9-style reply (no usable version): a bare page, no headers
                assert b"Error code: 400" in reply or b"Error code: 505" in reply
                continue
            head = reply.split(b"\r\n\r\n", 1)[0].decode()
            assert head.split()[1] in ("404", "501"), head
            server_header = [line for line in head.splitlines() if line.lower().startswith("server:")]
            assert server_header and server_header[0].split(":", 1)[1].strip() == "cctvkit-edge", head
    finally:
        server.stop()


def test_scrapes_get_through_a_flood_of_idle_connections_with_threads_and_fds_bounded():
    # Row 1: 300 idle connections, each one the server drops replaced at once. A refusing cap let idle
    # clients hold every slot (2 of 30 scrapes failed); the oldest idle one is evicted for a new one instead.
    server = ServerProcess()
    try:
        threads0, fds0 = server.threads(), server.fds()
        with IdleFlood(server.port, 300) as flood:
            while flood.connects < 300:
                time.sleep(0.05)
            threads, fds, took = [], [], []
            for _ in range(20):
                t0 = time.monotonic()
                code, body, _ = scrape(server.port)
                took.append(time.monotonic() - t0)
                assert (code, body) == (200, b"up 1\n")
                threads.append(server.threads())
                fds.append(server.fds())
                time.sleep(0.1)
            assert flood.dropped > MAX_CONNECTIONS, "the flood never filled the cap"
        assert max(took) < 1.0, f"scrapes took {sorted(took)[-3:]} s"
        # One handler thread and one socket per held connection; a few more while evicted ones close.
        assert max(threads) <= threads0 + MAX_CONNECTIONS + 4, threads
        assert max(fds) <= fds0 + MAX_CONNECTIONS + 4, fds
    finally:
        server.close()
