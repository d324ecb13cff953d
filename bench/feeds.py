"""Where the speed pass gets its frames: the labelled frames cycled, or a live --source (file, camera, URL).

A --source goes through edge/sources (the daemon's own capture code, latest-frame semantics), so a camera's
sustained FPS includes waiting for the camera, as it would in service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.errors import CctvkitError
from edge.sources import Capture, make_source

FIRST_FRAME_TIMEOUT_S = 15.0
FRAME_TIMEOUT_S = 10.0


class Feed(Protocol):
    description: str

    def next(self) -> np.ndarray: ...

    def close(self) -> None: ...


class ListFeed:
    """Decoded frames in memory, cycled: measures the model, not the disk or the decoder."""

    def __init__(self, frames: list[np.ndarray], description: str):
        if not frames:
            raise CctvkitError("no frames to time the models on", fix="pass --source or --labels with images")
        self.frames = frames
        self.description = description
        self._i = 0

    def next(self) -> np.ndarray:
        frame = self.frames[self._i % len(self.frames)]
        self._i += 1
        return frame

    def close(self) -> None:
        return None


def source_config(text: str) -> dict[str, Any]:
    """--source FILE|DIR|DEVICE|URL -> an edge/sources config (files and folders loop for --duration)."""
    if "://" in text:
        return {"type": "stream", "url": text}
    if text == "picamera2":
        return {"type": "picamera2"}
    if text.isdigit():
        return {"type": "v4l2", "device": int(text)}
    if text.startswith("/dev/"):
        return {"type": "v4l2", "device": text}
    path = Path(text)
    if path.is_dir():
        return {"type": "images", "path": path, "loop": True}
    return {"type": "file", "path": path, "loop": True}


class CaptureFeed:
    """A camera/stream/file on its own capture thread; next() hands the newest frame."""

    def __init__(self, text: str):
        self.text = text
        source = make_source(source_config(text))  # CctvkitError: missing file, unknown device...
        self.description = source.describe()
        self.capture = Capture(source).start()
        first = self.capture.latest(timeout=FIRST_FRAME_TIMEOUT_S)
        if first is None:
            why = self.capture.last_error or "no frame arrived"
            self.close()
            raise CctvkitError(f"the source delivered no frames ({why})", text,
                               "check the file/camera/URL plays, e.g. with `edge run --source`")
        self.first = first.image

    def next(self) -> np.ndarray:
        frame = self.capture.latest(timeout=FRAME_TIMEOUT_S)
        if frame is None:
            raise CctvkitError(f"no frame from the source for {FRAME_TIMEOUT_S:.0f} s "
                               f"({self.capture.last_error or 'stalled'})", self.text, "check the source")
        return frame.image

    def close(self) -> None:
        self.capture.stop()


def parse_duration(text: str | None) -> float | None:
    """'10m', '90s', '1h', '45' (seconds) -> seconds; None stays None."""
    if text is None:
        return None
    t = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        seconds = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise CctvkitError(f"cannot read duration '{text}'", fix="use e.g. 10m, 90s or 1h") from None
    if seconds <= 0:
        raise CctvkitError(f"duration '{text}' is not positive", fix="use e.g. 10m, 90s or 1h")
    return seconds

