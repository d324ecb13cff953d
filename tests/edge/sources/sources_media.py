"""Real media for the source tests: small MJPG videos, image folders and an MJPEG-over-HTTP server.

Every frame carries its own number as 8 black/white blocks along the top, which survive JPEG, so a test
can tell which frame it got without trusting the code under test.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

W, H = 64, 48
BLOCK = 8  # 8 blocks of 8x16 px encode the frame number mod 256


def numbered_frame(i: int, shade: int = 90) -> np.ndarray:
    img = np.full((H, W, 3), shade, np.uint8)
    for bit in range(8):
        value = 255 if (i >> bit) & 1 else 0
        img[:16, bit * BLOCK : (bit + 1) * BLOCK] = value
    return img


def frame_number(img: np.ndarray) -> int:
    n = 0
    for bit in range(8):
        if img[2:14, bit * BLOCK + 2 : (bit + 1) * BLOCK - 2].mean() > 127:
            n |= 1 << bit
    return n


def write_mjpg_avi(path: Path, n: int, fps: float = 10.0, start: int = 0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened(), "this OpenCV cannot write MJPG AVI"
    for i in range(start, start + n):
        writer.write(numbered_frame(i))
    writer.release()
    return path


def jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


class MjpegServer:
    """multipart/x-mixed-replace MJPEG over HTTP on 127.0.0.1, like an IP camera's /video.mjpg.

    kill() cuts every open connection for real (TCP shutdown + close) and closes the listening socket;
    start() on the same port brings the "camera" back. `shade` lets a test tell the two lives apart.
    auth=(user, password): HTTP basic auth as IP cameras do it (401 with a challenge, then the credentials);
    `refused` counts the requests turned away."""

    def __init__(self, port: int = 0, fps: float = 50.0, shade: int = 90, max_frames: int = 5000,
                 auth: tuple[str, str] | None = None):
        self.port = port
        self.fps = fps
        self.shade = shade
        self.max_frames = max_frames
        self.stall_after: int | None = None  # stop sending (but keep the socket open) after N frames
        self.auth = auth
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> MjpegServer:
        outer = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if outer.auth is not None:
                    expected = "Basic " + base64.b64encode(":".join(outer.auth).encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        outer.refused += 1
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                with outer._lock:
                    outer._conns.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for i in range(outer.max_frames):  # bounded: a test server never runs forever
                        if outer._stopping.is_set():
                            return
                        if outer.stall_after is not None and i >= outer.stall_after:
                            outer._stopping.wait(10.0)  # silent but connected: only a read timeout helps
                            return
                        data = jpeg(numbered_frame(i, outer.shade))
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                        self.wfile.write(head.encode() + data + b"\r\n")
                        time.sleep(1.0 / outer.fps)
                except OSError:
                    return  # client went away or kill() cut the socket

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def kill(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):  # already closed by the peer
                c.shutdown(socket.SHUT_RDWR)
            c.close()
