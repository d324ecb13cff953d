"""sd_notify(3) without libsystemd: one datagram per message to the unix socket in $NOTIFY_SOCKET.

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op, so the daemon runs the same in a shell.

n = Notifier.from_env()
n.ready("model loaded")                # READY=1 + STATUS=...
n.watchdog()                           # WATCHDOG=1, call it from the loop that must not get stuck
interval = watchdog_interval()         # WatchdogSec in seconds, or None when systemd asked for none
"""

from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def _address(name: str) -> str | bytes:
    # "@name" is a socket in the abstract namespace: its address starts with a NUL byte instead.
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: dict[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings systemd expects at the latest (WatchdogSec), None when it expects
    none. $WATCHDOG_PID, when set, names the process that must ping: another pid means "not you"."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Sends sd_notify messages; every method is a silent no-op when there is no socket."""

    def __init__(self, socket_name: str | None):
        self.socket_name = socket_name or None
        self.sent = 0
        self.errors = 0
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # the loop and the signal path may both notify
        if self.socket_name:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)  # a full socket must never stall the inference loop

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send "KEY=value" fields in one datagram; False when unset or the send failed (logged once)."""
        if self._sock is None or self.socket_name is None:
            return False
        payload = "\n".join(f.replace("\n", " ") for f in fields).encode()
        with self._lock:
            try:
                self._sock.sendto(payload, _address(self.socket_name))
            except OSError as e:
                # systemd gone or socket full: the daemon keeps working, the service manager will notice.
                if self.errors == 0:
                    log.warning("sd_notify to %s failed: %s", self.socket_name, e)
                self.errors += 1
                return False
            self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class WatchdogPinger:
    """Rate-limits WATCHDOG=1 to a third of WatchdogSec (systemd's advice), called once per loop turn."""

    def __init__(self, notifier: Notifier, interval: float | None):
        self.notifier = notifier
        self.period = interval / 3.0 if interval else None
        self._last = float("-inf")
        self.pings = 0

    def __call__(self, now: float) -> None:
        if self.period is None or now - self._last < self.period:
            return
        self._last = now
        if self.notifier.watchdog():
            self.pings += 1
