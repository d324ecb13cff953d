"""The Raspberry Pi camera (CSI) through Picamera2/libcamera.

The frame is asked for at (about) the model's input size, so the ISP does the downscale in hardware
and the CPU never resizes a 12 MP image. Format RGB888 is, despite the name, B,G,R byte order in numpy
(libcamera names formats by little-endian words): exactly what OpenCV and edge/detect expect.

picamera2 comes from apt (python3-picamera2), not pip: it is imported only in open(), so the rest of
edge/ imports on any machine, and the venv must be made with --system-site-packages to see it.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from edge.sources.base import Source, SourceConfigBase, SourceError

# Used when neither the config nor the model gives a size.
DEFAULT_LONG_SIDE = 640


class Picamera2Config(SourceConfigBase):
    type: Literal["picamera2"] = "picamera2"
    camera: int = Field(default=0, ge=0)  # index when several cameras are connected
    # None: the model's input size (long side), keeping the sensor's aspect ratio.
    width: int | None = Field(default=None, gt=0, le=4608)
    height: int | None = Field(default=None, gt=0, le=3496)
    fps: float | None = Field(default=None, gt=0, le=240)
    format: Literal["RGB888", "XRGB8888"] = "RGB888"
    # "main": the main stream at the small size (works on Pi 4 and 5). "lores": the low-resolution
    # stream, RGB only on a Pi 5 (PiSP); on a Pi 4 lores is YUV420 and cannot be used here.
    stream: Literal["main", "lores"] = "main"

    @model_validator(mode="after")
    def _both_or_neither(self) -> Picamera2Config:
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither (then the model's input size is used)")
        return self


def fit_size(sensor: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) with the sensor's aspect ratio and the given long side, both even (ISP alignment)."""
    sw, sh = sensor
    scale = long_side / max(sw, sh)
    w, h = max(2, round(sw * scale)), max(2, round(sh * scale))
    return w - w % 2, h - h % 2


class Picamera2Source(Source):
    name = "picamera2"
    Config = Picamera2Config

    def __init__(self, cfg: Picamera2Config, model_imgsz: tuple[int, int] | None = None):
        super().__init__(cfg)
        self.cfg: Picamera2Config = cfg
        self.model_imgsz = model_imgsz  # (h, w) of the model, for the default frame size
        self._cam: Any = None
        self.size: tuple[int, int] | None = None  # (w, h) granted, after open()

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            found = importlib.util.find_spec("picamera2") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return "not installed (apt install python3-picamera2 and a venv with --system-site-packages)"
        return None

    def describe(self) -> str:
        size = f" {self.size[0]}x{self.size[1]}" if self.size else ""
        return f"picamera2 camera {self.cfg.camera}{size} {self.cfg.format} ({self.cfg.stream} stream)"

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as e:
            raise SourceError(f"picamera2 {self.unavailable() or 'cannot be imported'}: {e}") from e
        try:
            cam = Picamera2(self.cfg.camera)
        except Exception as e:  # libcamera raises RuntimeError/IndexError when no camera is detected
            raise SourceError(f"no Raspberry Pi camera {self.cfg.camera} ({type(e).__name__}: {e})") from e
        try:
            self._configure(cam)
            cam.start()
        except Exception as e:
            cam.close()
            raise SourceError(f"cannot start Raspberry Pi camera ({type(e).__name__}: {e})") from e
        self._cam = cam

    def _configure(self, cam: Any) -> None:
        if self.cfg.width and self.cfg.height:
            size = (self.cfg.width, self.cfg.height)
        else:
            long_side = max(self.model_imgsz) if self.model_imgsz else DEFAULT_LONG_SIDE
            sw, sh = cam.sensor_resolution
            size = fit_size((int(sw), int(sh)), long_side)
        small = {"size": size, "format": self.cfg.format}
        controls = {"FrameRate": self.cfg.fps} if self.cfg.fps else {}
        if self.cfg.stream == "lores":
            # main keeps Picamera2's default video size (lores must not be larger); only lores is read.
            config = cam.create_video_configuration(lores=small, controls=controls, buffer_count=4)
        else:
            config = cam.create_video_configuration(main=small, controls=controls, buffer_count=4)
        cam.align_configuration(config)
        cam.configure(config)
        granted = config[self.cfg.stream]["size"]
        self.size = (int(granted[0]), int(granted[1]))

    def read(self) -> np.ndarray:
        if self._cam is None:
            raise SourceError("picamera2 source read before open")
        try:
            frame = self._cam.capture_array(self.cfg.stream)
        except Exception as e:
            raise SourceError(f"Raspberry Pi camera stopped ({type(e).__name__}: {e})") from e
        if frame.ndim == 3 and frame.shape[2] == 4:  # XRGB8888 is B,G,R,X: drop the padding byte
            frame = np.ascontiguousarray(frame[:, :, :3])
        return frame

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None
