"""The metrics endpoint under hostile clients: idle connections, a broken collector, banner grabbing.

Issue 14 rows 1 and 13: 1,000 idle TCP connections had made 400 threads and exhausted the daemon's file
descriptors; responses named the Python version and echoed exception text.
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


def test_idle_connections_are_capped_timed_out_and_do_not_starve_a_scrape():
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}))
    server.start()
    idle: list[socket.socket] = []
    try:
        before = http_threads()
        for _ in range(4 * MAX_CONNECTIONS):  # idle clients: connect, send nothing
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            idle.append(s)
        time.sleep(0.5)
        # One handler thread per admitted connection at most; the rest were closed at once.
        assert http_threads() - before <= MAX_CONNECTIONS
        # While the admitted ones hold every slot a scrape is refused at once (not queued); once they have
        # timed out, the next scrape (Prometheus' next interval) gets through.
        t0 = time.monotonic()
        while True:
            try:
                code, body, _ = scrape(server.port)
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() - t0 <= READ_TIMEOUT_S + 2, "a scrape never got through"
                time.sleep(0.2)
        assert code == 200 and body == b"up 1\n"
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
