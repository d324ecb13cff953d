"""A folder of still images, in sorted path order: replays exported camera snapshots through the daemon.

An image that does not decode is a CorruptFrame (counted, skipped), not the end of the source. With loop
the folder is listed again at each pass, so images added meanwhile join in and deleted ones drop out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from edge.errors import CctvkitError
from edge.formats.yolo import IMAGE_SUFFIXES, list_images
from edge.sources.base import CorruptFrame, EndOfStream, Source, SourceConfigBase, SourceError


class ImagesConfig(SourceConfigBase):
    type: Literal["images"] = "images"
    path: Path
    loop: bool = False
    fps: float | None = Field(default=None, gt=0, le=1000)  # pace like a camera; None = as fast as decoded


class ImagesSource(Source):
    name = "images"
    Config = ImagesConfig

    def __init__(self, cfg: ImagesConfig):
        super().__init__(cfg)
        self.cfg: ImagesConfig = cfg
        self._files: list[Path] = []
        self._pos = 0
        self._good_this_pass = 0

    @property
    def live(self) -> bool:
        return self.cfg.fps is not None

    def check(self) -> None:
        folder = self.cfg.path
        if not folder.is_dir():
            raise CctvkitError("image folder not found", folder, "check source.path")
        if not list_images(folder):
            raise CctvkitError(
                "no images in this folder", folder, f"add files ending in {', '.join(sorted(IMAGE_SUFFIXES))}"
            )

    def describe(self) -> str:
        return f"images {self.cfg.path} ({len(self._files)} files{', loop' if self.cfg.loop else ''})"

    def open(self) -> None:
        self._list()
        self.reset_pace()

    def _list(self) -> None:
        try:
            files = list_images(self.cfg.path) if self.cfg.path.is_dir() else []
        except OSError as e:
            raise SourceError(f"cannot list {self.cfg.path}: {e}") from e
        if not files:
            raise SourceError(f"no images in {self.cfg.path}")
        self._files = files
        self._pos = 0
        self._good_this_pass = 0

    def read(self) -> np.ndarray:
        if self._pos >= len(self._files):
            if not self.cfg.loop:
                raise EndOfStream(f"all {len(self._files)} images of {self.cfg.path} delivered")
            if self._good_this_pass == 0:
                # Every image failed: looping would spin on corrupt frames forever.
                raise SourceError(f"no decodable image in {self.cfg.path}")
            self._list()
        path = self._files[self._pos]
        self._pos += 1
        try:
            # imdecode on the bytes: no path-encoding surprises and no OpenCV warning spam on bad files.
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise CorruptFrame(f"cannot read {path}: {e}") from e
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise CorruptFrame(f"cannot decode {path}")
        self._good_this_pass += 1
        if self.cfg.fps:
            self.pace(1.0 / self.cfg.fps)
        return image

    def close(self) -> None:
        self._files = []
        self._pos = 0
