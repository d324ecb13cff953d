"""A USB (UVC) or other V4L2 camera through OpenCV's V4L2 backend.

MJPG is requested by default: most USB cameras deliver only a few fps of raw YUYV at 640x480 and above
over USB 2, but full rate as MJPG. A one-frame driver buffer keeps the frame we read close to "now".
Unplugging the camera makes read() fail (ENODEV), which Capture turns into reconnect-with-backoff.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from edge.errors import CctvkitError
from edge.sources.base import Source, SourceConfigBase, SourceError


def video_devices() -> list[str]:
    """The /dev/video* nodes present, in numeric order."""

    def key(p: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", p)
        return (int(m.group(1)) if m else 1 << 30, p)

    return sorted(glob.glob("/dev/video*"), key=key)


class V4L2Config(SourceConfigBase):
    type: Literal["v4l2"] = "v4l2"
    device: int | str = 0  # index N (= /dev/videoN) or a path such as /dev/video0 or /dev/v4l/by-id/...
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    fps: float | None = Field(default=None, gt=0, le=1000)
    fourcc: str | None = "MJPG"  # None leaves the driver's default pixel format

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 4:
            raise ValueError("a FOURCC has exactly 4 characters, e.g. MJPG or YUYV")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("a device index is >= 0")
        if isinstance(v, str) and v.isdigit():
            return int(v)
        return v


class V4L2Source(Source):
    name = "v4l2"
    Config = V4L2Config

    def __init__(self, cfg: V4L2Config):
        super().__init__(cfg)
        self.cfg: V4L2Config = cfg
        self._cap: cv2.VideoCapture | None = None
        self.negotiated: tuple[int, int, float, str] | None = None  # what the driver granted

    @classmethod
    def unavailable(cls) -> str | None:
        if not video_devices():
            return "no camera (no /dev/video* device; plug in a USB camera or check `ls /dev/video*`)"
        return None

    @property
    def device_path(self) -> str:
        d = self.cfg.device
        return f"/dev/video{d}" if isinstance(d, int) else d

    def check(self) -> None:
        if not Path(self.device_path).exists():
            present = ", ".join(video_devices()) or "none"
            raise CctvkitError(
                "camera device not found", self.device_path, f"set source.device to one of: {present}"
            )

    def describe(self) -> str:
        text = f"v4l2 {self.device_path}"
        if self.negotiated:
            w, h, fps, fourcc = self.negotiated
            text += f" {w}x{h} @ {fps:g} fps {fourcc}"
        return text

    def open(self) -> None:
        self.close()
        if not Path(self.device_path).exists():
            raise SourceError(f"{self.device_path} is gone (camera unplugged?)")
        cap = cv2.VideoCapture(self.device_path, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.device_path} (busy, or no permission: user in group video?)")
        # Order matters to many UVC drivers: pixel format first, then size, then rate.
        if self.cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.cfg.fourcc))
        if self.cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
        if self.cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
        if self.cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)) if code else "?"
        self.negotiated = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            float(cap.get(cv2.CAP_PROP_FPS)),
            fourcc,
        )
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceError("v4l2 source read before open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f"no frame from {self.device_path} (camera unplugged or stalled)")
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
