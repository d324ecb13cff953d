"""A video file read through OpenCV: for tests, demos, benchmarks and soak runs without a camera.

loop: start again at the end (the soak benchmark loops vtest for 30 min). realtime: deliver frames at
the file's own frame rate, like a camera would, instead of as fast as the decoder goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge.errors import CctvkitError
from edge.sources.base import EndOfStream, Source, SourceConfigBase, SourceError

# Containers that report no frame rate (or nonsense) are paced at this rate in realtime mode.
FALLBACK_FPS = 25.0


class FileConfig(SourceConfigBase):
    type: Literal["file"] = "file"
    path: Path
    loop: bool = False
    realtime: bool = False  # pace reads at the file's native fps
    fps: float | None = Field(default=None, gt=0, le=1000)  # override the file's fps for realtime pacing

    @model_validator(mode="after")
    def _fps_needs_realtime(self) -> FileConfig:
        if self.fps is not None and not self.realtime:
            raise ValueError("fps only paces a file with realtime: true (set it, or drop fps)")
        return self


class FileSource(Source):
    name = "file"
    Config = FileConfig

    def __init__(self, cfg: FileConfig):
        super().__init__(cfg)
        self.cfg: FileConfig = cfg
        self._cap: cv2.VideoCapture | None = None
        self.fps = 0.0  # the rate realtime pacing uses, known after open()
        self._frames_this_pass = 0

    @property
    def live(self) -> bool:
        return self.cfg.realtime

    def check(self) -> None:
        path = self.cfg.path
        if not path.is_file():
            raise CctvkitError("video file not found", path, "check source.path")
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise CctvkitError("OpenCV cannot open this video", path, "convert it to MP4 (H.264) or MJPG AVI")
        finally:
            cap.release()

    def describe(self) -> str:
        mode = ", ".join(m for m, on in (("loop", self.cfg.loop), ("realtime", self.cfg.realtime)) if on)
        return f"file {self.cfg.path}" + (f" ({mode})" if mode else "")

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(str(self.cfg.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {self.cfg.path}")
        self._cap = cap
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = self.cfg.fps or (native if 0 < native <= 1000 else FALLBACK_FPS)
        self._frames_this_pass = 0
        self.reset_pace()

    def _rewind(self) -> None:
        """Re-open rather than seek: seeking to frame 0 is unreliable for some codecs/containers."""
        if self._frames_this_pass == 0:
            # A pass with no frame at all would spin forever: report it as a failure instead.
            raise SourceError(f"no decodable frame in {self.cfg.path}")
        next_due = self._next_due
        self.open()
        self._next_due = next_due  # keep the pace across the loop point

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceError("file source read before open")
        ok, frame = self._cap.read()
        if not ok:
            if not self.cfg.loop:
                raise EndOfStream(f"end of {self.cfg.path}")
            self._rewind()
            ok, frame = self._cap.read()
            if not ok:
                raise SourceError(f"cannot read {self.cfg.path} after rewinding")
        self._frames_this_pass += 1
        if self.cfg.realtime:
            self.pace(1.0 / self.fps)
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
