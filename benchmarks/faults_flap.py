"""Fault scenario `flap`: an HTTP MJPEG camera on loopback that disappears and comes back every --flap-s.

The camera is a real one as far as the daemon can tell: the `stream` source (OpenCV's FFmpeg backend)
reads multipart/x-mixed-replace JPEG frames of the video from a small HTTP server of this script at the
video's frame rate. Down means gone: the listening socket is closed (connect: refused) and every stream
being served is cut, as when a camera reboots or its switch port drops.

Figures per up-phase (from /metrics polled every 0.1 s): frames processed, seconds from the camera coming
back to the first frame processed; over the run: reconnects, up-phases with no frame at all, RSS growth,
presence records.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
from _daemon import GROWTH_LIMIT_PCT, EdgeDaemon, free_port, mib, rss_growth, scrape
from faults_base import Outcome, Setup, edge_config, finish, start_ready
from faults_records import presence_counts, read_jsonl
from rich.console import Console

console = Console()
BOUNDARY = b"cctvkitframe"
RECOVERY_SLACK_S = 2.0  # open + first read + one inference, on top of the capture backoff


def encode_frames(video: Path, count: int) -> tuple[list[bytes], float]:
    """The first `count` frames of the video as JPEG, and its frame rate."""
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 10.0
    jpegs: list[bytes] = []
    while len(jpegs) < count:
        ok, frame = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    cap.release()
    return jpegs, fps


class FlappingCamera:
    """An MJPEG-over-HTTP camera on 127.0.0.1:port that up() starts and down() makes vanish."""

    def __init__(self, jpegs: list[bytes], fps: float, port: int):
        self.jpegs, self.period, self.port = jpegs, 1.0 / fps, port
        self.url = f"http://127.0.0.1:{port}/stream.mjpg"
        self.connections = 0  # streams opened, over all up-phases
        self.frames_sent = 0
        self._server: ThreadingHTTPServer | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down = threading.Event()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with camera._lock:
                    camera.connections += 1
                    camera._clients.add(self.connection)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    i, due = 0, time.monotonic()
                    while not camera._down.is_set():
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        self.wfile.write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                         % (BOUNDARY, len(jpeg), jpeg))
                        camera.frames_sent += 1
                        i += 1
                        due += camera.period
                        time.sleep(max(0.0, due - time.monotonic()))
                except OSError:
                    pass  # the client went away, or down() cut the stream
                finally:
                    with camera._lock:
                        camera._clients.discard(self.connection)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        return Handler

    def up(self) -> None:
        if self._server is not None:
            return
        self._down.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._server = server

    def down(self) -> None:
        self._down.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # connect() is refused from now on
            self._server = None
        with self._lock:
            for conn in list(self._clients):  # cut the streams being served mid-frame
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def scenario_flap(setup: Setup, minutes: float, flap_s: float) -> Outcome:
    out = Outcome("flap")
    work, records = setup.work, setup.work / "records"
    jpegs, fps = encode_frames(setup.video, 300)
    camera = FlappingCamera(jpegs, fps, free_port())
    # The stream source with its defaults: what a user's edge.yaml for an HTTP camera says.
    config, port = edge_config(setup, work, {"type": "stream", "url": camera.url}, records)
    capture_max_s = 10.0  # capture.backoff_max_s's default
    camera.up()
    daemon = EdgeDaemon(config, work, watchdog_s=setup.watchdog_s)
    try:
        if start_ready(daemon, setup, out) is None:
            return out
        t_ready = time.monotonic()
        console.print(f"  READY; the camera flaps every {flap_s:g} s for {minutes:g} min")
        phases: list[dict[str, Any]] = []  # one per up-phase after the first
        rss: list[tuple[float, int]] = []
        last: dict[str, float] = {}
        next_rss = t_ready
        phase_end = t_ready + flap_s
        is_up = True
        current: dict[str, Any] | None = None
        end = t_ready + minutes * 60
        while time.monotonic() < end and daemon.alive:
            now = time.monotonic()
            if now >= phase_end:
                if is_up:
                    camera.down()
                    if current is not None:
                        current["processed"] = last.get("frames_processed", 0.0) - current["processed_at_up"]
                else:
                    camera.up()
                    current = {"up_at": now, "processed_at_up": last.get("frames_processed", 0.0),
                               "first_frame_s": None}
                    phases.append(current)
                is_up = not is_up
                phase_end += flap_s
            m = scrape(port, timeout=1.0)
            if m:
                last = m
                if (is_up and current is not None and current["first_frame_s"] is None
                        and m.get("frames_processed", 0.0) > current["processed_at_up"]):
                    current["first_frame_s"] = time.monotonic() - current["up_at"]
            if now >= next_rss:
                if (r := daemon.rss()) is not None:
                    rss.append((now - t_ready, r))
                next_rss += 5.0
            daemon.sleep(0.1)
        if current is not None and "processed" not in current:
            current["processed"] = last.get("frames_processed", 0.0) - current["processed_at_up"]
        camera.up()  # whatever phase it ended in: the stop below is a normal one
        summarise(out, phases, last, rss, camera, flap_s, capture_max_s)
        finish(daemon, out, records)
        presence = presence_counts(read_jsonl(records))
        out.add("presence records by state", presence or "none")
    finally:
        daemon.close()
        camera.down()
    return out


def summarise(out: Outcome, phases: list[dict[str, Any]], last: dict[str, float], rss: list[tuple[float, int]],
              camera: FlappingCamera, flap_s: float, capture_max_s: float) -> None:
    out.add("camera comebacks (up-phases after the first)", len(phases))
    out.add("camera streams opened (server side)", camera.connections)
    out.add("camera_reconnects (/metrics)", last.get("camera_reconnects"))
    recovered = [p["first_frame_s"] for p in phases if p["first_frame_s"] is not None]
    missed = len(phases) - len(recovered)
    out.add("up-phases with no frame processed", missed,
            f"0 when the phase outlasts backoff_max_s + {RECOVERY_SLACK_S:g} s")
    if flap_s > capture_max_s + RECOVERY_SLACK_S:
        out.check(missed == 0, f"{missed} of {len(phases)} camera comebacks got no frame processed in {flap_s:g} s")
    if recovered:
        out.add("camera back -> first frame processed: median / max (s)",
                f"{statistics.median(recovered):.2f} / {max(recovered):.2f}",
                f"max <= backoff_max_s {capture_max_s:g} + {RECOVERY_SLACK_S:g}")
        out.check(max(recovered) <= capture_max_s + RECOVERY_SLACK_S,
                  f"a comeback took {max(recovered):.1f} s to its first frame")
    per_phase = [p["processed"] for p in phases if "processed" in p]
    if per_phase:
        out.add("frames processed per up-phase: min / median / max",
                f"{min(per_phase):.0f} / {statistics.median(per_phase):.0f} / {max(per_phase):.0f}",
                f"the camera sends {flap_s * 1 / camera.period:.0f}")
    out.add("frames processed / dropped (total)",
            f"{last.get('frames_processed', 0):.0f} / {last.get('frames_dropped', 0):.0f}")
    growth, start, end = rss_growth(rss, 60.0)
    out.add("RSS after 60 s warm-up: start -> end",
            f"{mib(start)} -> {mib(end)} ({growth:+.2f} %)" if growth is not None else "too few samples",
            f"< {GROWTH_LIMIT_PCT:g} %")
    if growth is not None:
        out.check(growth < GROWTH_LIMIT_PCT, f"RSS grew {growth:.2f} % over the flapping")
