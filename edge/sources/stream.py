"""An RTSP or HTTP (MJPEG, HLS...) stream read through OpenCV's FFmpeg backend.

Open and read timeouts are set on the capture so that a cut stream, or a camera that accepts the
connection but stops sending, fails read() within read_timeout_s instead of blocking the capture thread
forever; Capture then reconnects with backoff. RTSP over TCP by default: over UDP a lossy Wi-Fi link
gives smeared, half-grey frames that still decode.
"""

from __future__ import annotations

import os
import threading
from typing import Literal
from urllib.parse import urlsplit

import cv2
import numpy as np
from pydantic import Field, field_validator

from edge.redact import mask_url  # every URL this module prints goes through it
from edge.sources.base import Source, SourceConfigBase, SourceError

SCHEMES = ("rtsp", "rtsps", "http", "https")
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# OpenCV reads the options from the environment at open time, which is process-wide: one open at a time.
_ENV_LOCK = threading.Lock()


class StreamConfig(SourceConfigBase):
    type: Literal["stream"] = "stream"
    url: str
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = urlsplit(v).scheme.lower()
        if scheme not in SCHEMES or not urlsplit(v).hostname:
            raise ValueError(f"expected a URL like rtsp://host:554/path (schemes: {', '.join(SCHEMES)})")
        return v


class StreamSource(Source):
    name = "stream"
    Config = StreamConfig

    def __init__(self, cfg: StreamConfig):
        super().__init__(cfg)
        self.cfg: StreamConfig = cfg
        self._cap: cv2.VideoCapture | None = None

    def describe(self) -> str:
        return f"stream {mask_url(self.cfg.url)}"

    def _ffmpeg_options(self) -> str | None:
        """The rtsp_transport option, unless the user set OPENCV_FFMPEG_CAPTURE_OPTIONS themselves."""
        if urlsplit(self.cfg.url).scheme.lower() not in ("rtsp", "rtsps"):
            return None
        if os.environ.get(FFMPEG_OPTIONS_ENV):
            return None
        return f"rtsp_transport;{self.cfg.rtsp_transport}"

    def open(self) -> None:
        self.close()
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.cfg.open_timeout_s * 1000)]
        params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.read_timeout_s * 1000)]
        options = self._ffmpeg_options()
        with _ENV_LOCK:
            if options is not None:
                os.environ[FFMPEG_OPTIONS_ENV] = options
            try:
                cap = cv2.VideoCapture(self.cfg.url, cv2.CAP_FFMPEG, params)
            finally:
                if options is not None:
                    os.environ.pop(FFMPEG_OPTIONS_ENV, None)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {mask_url(self.cfg.url)} (unreachable, refused or timed out)")
        # Keep only the newest decoded frame where the backend allows it (lower latency after a stall).
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceError("stream source read before open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f"stream {mask_url(self.cfg.url)} cut or stalled")
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
