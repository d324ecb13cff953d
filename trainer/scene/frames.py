"""Open a video, a folder of frames or a glob of frames once to learn what it is, and read chosen frames by
index in one sequential pass.

Frame sequences matter because CCTV footage often arrives as exported stills (NVR snapshots, datasets
such as thermal-harbour or CAVIAR) rather than as a video file.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.scene.imagesize import image_size

FIX = "pass a readable video with --video"
FIX_ANY = "pass a video file, a folder of frames or a quoted glob such as 'cam/*.jpg' with --video"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FPS = 25.0  # stills carry no frame rate; 25 is the PAL CCTV rate, and fps only sets timestamps
GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    kind: str = "video"  # "video" | "folder" | "glob"

    def to_json(self) -> dict:
        return asdict(self)


def _natural_key(path: Path) -> tuple:
    # re.split with a capturing group alternates text, number, text...: the types line up position by
    # position, so the lists compare without mixing str and int. frame_2 sorts before frame_10.
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), path.name


def _is_glob(path: Path) -> bool:
    return not path.exists() and any(c in str(path) for c in GLOB_CHARS)


def _images_in(files: Iterable[Path]) -> list[Path]:
    return sorted((p for p in files if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)


def input_kind(path: str | Path) -> str:
    """"video" for a file, "folder" for a directory, "glob" for a pattern that is not itself a path."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    return "glob" if _is_glob(path) else "video"


def frame_files(path: str | Path) -> list[Path] | None:
    """The ordered frame files of a folder or glob input (index i is frame i), None for a video file.

    A folder holding an images/ subfolder is a YOLO dataset folder: its frames are images/ only, so labels
    or plates beside them never become frames. Files are in natural name order (frame_2 before frame_10).
    """
    path = Path(path)
    kind = input_kind(path)
    if kind == "video":
        if not path.exists():
            raise CctvkitError("video, frame folder or glob not found", path, FIX_ANY)
        return None
    if kind == "folder":
        folder = path / "images" if (path / "images").is_dir() else path
        files = _images_in(folder.iterdir())
        if not files:
            raise CctvkitError(f"frame folder holds no {'/'.join(FRAME_SUFFIXES)} images", folder, FIX_ANY)
        return files
    files = _images_in(Path(p) for p in glob.glob(str(path)))
    if not files:
        raise CctvkitError(f"glob matches no {'/'.join(FRAME_SUFFIXES)} image files", path,
                           "check the pattern (quote it so the shell does not expand it) and pass it with --video")
    return files


def _fps(own: float, override: float | None) -> float:
    if override is not None:
        return float(override)
    if not np.isfinite(own) or own <= 0 or own > 1000:
        return DEFAULT_FPS  # only used for timestamps in the summary; a wrong guess harms nothing else
    return own


def _bad_frame(file: Path, why: str) -> CctvkitError:
    return CctvkitError(why, file, "remove or replace that file (every frame must be a readable image of the "
                                   "same size) and pass the frames again with --video")


def _read_still(file: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if frame is None or frame.size == 0:
        raise _bad_frame(file, "cannot decode frame image")
    got = (frame.shape[1], frame.shape[0])
    if size is not None and got != size:
        raise _bad_frame(file, f"frame is {got[0]}x{got[1]}, the first frame is {size[0]}x{size[1]}")
    return frame


def _probe_stills(path: Path, files: list[Path], kind: str, fps: float | None) -> VideoInfo:
    """Size from the first frame (decoded, so an unreadable first file fails here), then every file's header
    against it: an odd or broken file is named now, not after minutes of scanning."""
    first = _read_still(files[0])
    size = (first.shape[1], first.shape[0])
    for file in files[1:]:
        got = image_size(file)
        if got is None:  # no header we parse (or a broken one): decode it to find out
            frame = _read_still(file)
            got = (frame.shape[1], frame.shape[0])
        if got != size:
            raise _bad_frame(file, f"frame is {got[0]}x{got[1]}, the first frame is {size[0]}x{size[1]}")
    return VideoInfo(str(path), size[0], size[1], _fps(0.0, fps), len(files), kind)


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


def open_video(path: str | Path, fps: float | None = None) -> VideoInfo:
    """Probe a video, a frame folder or a glob: size, fps and the number of frames.

    `fps` overrides the video's own rate, and is the rate of stills (DEFAULT_FPS when None). A video's
    container frame count is only trusted when it is positive; some files (MJPG streams, cut recordings)
    report 0 or garbage, and then the frames are counted by grabbing them, which is cheap next to decoding.
    """
    path = Path(path)
    files = frame_files(path)
    if files is not None:
        return _probe_stills(path, files, input_kind(path), fps)
    cap = _capture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None or frame.size == 0:
            raise CctvkitError("cannot decode video (no frame decodes)", path, FIX)
        height, width = frame.shape[:2]
        own = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:
            count = 1
            while cap.grab():
                count += 1
    finally:
        cap.release()
    return VideoInfo(str(path), int(width), int(height), _fps(own, fps), count)


def iter_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, BGR frame) for the wanted indices in increasing order.

    Stills: frame i is frame_files(path)[i]; an unreadable file, or one of another size than the first, is
    a CctvkitError naming it. Video: one forward pass, frames in between are grab()bed (demuxed, not
    converted), which is exact for every codec, unlike seeking with CAP_PROP_POS_FRAMES. A video that
    ends early (its header over-reports the count) simply yields fewer frames.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    if not wanted:
        return
    files = frame_files(path)
    if files is not None:
        first = _read_still(files[0])
        size = (first.shape[1], first.shape[0])
        for idx in wanted:
            if idx >= len(files):
                return
            yield idx, first if idx == 0 else _read_still(files[idx], size)
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


