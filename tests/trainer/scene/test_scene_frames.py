"""Video probing and frame access by index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_video as synth

from edge.errors import CctvkitError
from trainer.scene.frames import iter_frames, open_video


def test_open_video_reports_size_fps_and_count(synth_video: Path):
    info = open_video(synth_video)
    assert (info.width, info.height, info.frame_count) == (synth.W, synth.H, synth.N_FRAMES)
    assert info.fps == pytest.approx(synth.FPS)
    assert info.path == str(synth_video)


def test_iter_frames_returns_exactly_the_asked_frames(synth_video: Path):
    cap = cv2.VideoCapture(str(synth_video))
    every = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        every.append(frame)
    cap.release()
    wanted = [57, 3, 3, 0, 31, 999]  # unsorted, a duplicate, one past the end
    got = list(iter_frames(synth_video, wanted))
    assert [i for i, _ in got] == [0, 3, 31, 57]
    for i, frame in got:
        assert np.array_equal(frame, every[i]), f"frame {i} differs from a sequential read"


@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty", "folder"])
def test_unreadable_video_is_a_one_line_error_naming_the_file(kind: str, tmp_path: Path, corrupt_video: Path):
    path = {"missing": tmp_path / "nope.avi", "corrupt": corrupt_video, "empty": tmp_path / "empty.avi",
            "folder": tmp_path}[kind]
    if kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(CctvkitError) as err:
        open_video(path)
    text = str(err.value)
    assert str(path) in text and "--video" in text and "\n" not in text
    with pytest.raises(CctvkitError):
        list(iter_frames(path, [0]))
