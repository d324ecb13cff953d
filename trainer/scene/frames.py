"""Open a video once to learn what it is, and read chosen frames by index in one sequential pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError

FIX = "pass a readable video with --video"


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frame_count: int

    def to_json(self) -> dict:
        return asdict(self)


def _capture(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise CctvkitError("video not found", path, FIX)
    if not path.is_file():
        raise CctvkitError("is not a file", path, FIX)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise CctvkitError("cannot decode video", path, FIX)
    return cap


def open_video(path: str | Path) -> VideoInfo:
    """Probe a video: size, fps and the number of frames that really decode.

    The container's frame count is only trusted when it is positive; some files (MJPG streams,
    cut recordings) report 0 or garbage, and then the frames are counted by grabbing them, which
    is cheap next to decoding.
    """
    path = Path(path)
    cap = _capture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None or frame.size == 0:
            raise CctvkitError("cannot decode video (no frame decodes)", path, FIX)
        height, width = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 25.0  # only used for timestamps in the summary; a wrong guess harms nothing else
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:
            count = 1
            while cap.grab():
                count += 1
    finally:
        cap.release()
    return VideoInfo(str(path), int(width), int(height), fps, count)


def iter_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, BGR frame) for the wanted indices in increasing order.

    One forward pass: frames in between are grab()bed (demuxed, not converted), which is exact
    for every codec, unlike seeking with CAP_PROP_POS_FRAMES. A video that ends early (its
    header over-reports the count) simply yields fewer frames.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    if not wanted:
        return
    cap = _capture(path)
    try:
        pos = 0
        for idx in wanted:
            while pos < idx:
                if not cap.grab():
                    return
                pos += 1
            ok, frame = cap.read()
            pos += 1
            if not ok or frame is None:
                return
            yield idx, frame
    finally:
        cap.release()


def spread(start: int, stop: int, n: int) -> list[int]:
    """Up to n frame indices evenly spread over [start, stop), deterministic."""
    if stop <= start or n <= 0:
        return []
    if n >= stop - start:
        return list(range(start, stop))
    return sorted({int(v) for v in np.linspace(start, stop - 1, n).round()})
