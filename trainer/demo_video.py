"""Where the demo's video comes from: --video (a video, a frame folder or a glob), else OpenCV's sample
vtest.avi from Debian's opencv-doc.

The Debian package is fetched with `apt-get download` (a package registry, the one place the trainer
touches the network, and only when no video was given) and cached under ~/.cache/cctvkit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge.errors import CctvkitError
from trainer.scene.frames import frame_files, input_kind

DEB_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
FIX = ("pass a video (or a folder or quoted glob of frames) of a fixed camera with people walking: "
       "--video PATH")


def cache_dir() -> Path:
    return Path(os.environ.get("CCTVKIT_CACHE", Path.home() / ".cache" / "cctvkit"))


def resolve_demo_video(video: Path | None) -> Path:
    """--video as given (a video file, a folder of frames or a glob such as 'cam/*.jpg'), checked to exist
    and, for stills, to hold at least one frame; without --video, vtest.avi."""
    if video is not None:
        video = Path(video)
        if video.is_file():
            return video
        if input_kind(video) == "video":
            raise CctvkitError("video file, frame folder or glob not found", video, FIX)
        frame_files(video)  # a folder or glob without frames is an error naming it
        return video
    cached = cache_dir() / "vtest.avi"
    if cached.is_file():
        return cached
    return _fetch_from_opencv_doc(cached)


def _fetch_from_opencv_doc(dest: Path) -> Path:
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise CctvkitError("no --video given and apt-get/dpkg-deb are not available to get vtest.avi", None, FIX)
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if got.returncode != 0 or not debs:
            why = (got.stderr.strip().splitlines() or ["no .deb"])[-1]
            raise CctvkitError(f"no --video given and `apt-get download opencv-doc` failed ({why})", None, FIX)
        extract = Path(tmp) / "x"
        extract.mkdir()
        # dpkg-deb --fsys-tarfile | tar x <member> pulls out just the one file.
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile '{debs[0]}' | tar -x -C '{extract}' '{DEB_MEMBER}'",
            shell=True, capture_output=True, text=True,
        )
        found = extract / DEB_MEMBER
        if tar.returncode != 0 or not found.is_file():
            raise CctvkitError(f"{debs[0].name} holds no vtest.avi", None, FIX)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        shutil.copyfile(found, part)
        os.replace(part, dest)
    return dest
