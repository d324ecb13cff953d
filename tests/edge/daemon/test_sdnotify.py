from __future__ import annotations

import os
import socket

from edge.sdnotify import Notifier, WatchdogPinger, watchdog_interval


def recv_all(sock: socket.socket) -> list[str]:
    sock.settimeout(0.5)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
            sock.settimeout(0.05)
    except TimeoutError:
        pass
    return out


def test_messages_reach_a_path_socket(tmp_path):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        n = Notifier.from_env({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.ready("model loaded\nsecond line") and n.watchdog() and n.status("5 fps") and n.stopping()
        n.close()
        msgs = recv_all(srv)
    assert msgs == ["READY=1\nSTATUS=model loaded second line", "WATCHDOG=1", "STATUS=5 fps", "STOPPING=1"]


def test_abstract_namespace_socket():
    name = f"cctvkit-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        n = Notifier(f"@{name}")
        assert n.ready()
        assert recv_all(srv) == ["READY=1"]
        n.close()


def test_unset_socket_is_a_no_op_and_a_dead_socket_is_not_fatal(tmp_path):
    n = Notifier.from_env({})
    assert not n.enabled and n.ready() is False and n.watchdog() is False
    dead = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert dead.ready() is False and dead.errors == 1


def test_watchdog_interval_from_environment():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "3000000"}) == 3.0
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, pid=2) is None  # not us
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "7"}, pid=7) == 3.0
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_pinger_sends_at_most_every_third_of_the_interval(tmp_path):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        ping = WatchdogPinger(Notifier(str(path)), interval=3.0)
        for t in (0.0, 0.5, 0.99, 1.0, 1.5, 2.2):
            ping(t)
        assert ping.pings == 3  # at 0.0, 1.0 and 2.2
        assert recv_all(srv) == ["WATCHDOG=1"] * 3
    silent = WatchdogPinger(Notifier(str(path)), interval=None)
    silent(0.0)
    assert silent.pings == 0
