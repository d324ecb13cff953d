"""Frame folders and globs as input: the same frames as a video, natural name order, fps, bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_video as synth

from edge.errors import CctvkitError
from trainer.demo_video import resolve_demo_video
from trainer.scene.frames import frame_files, iter_frames, open_video
from trainer.scene.imagesize import image_size
from trainer.scene.params import SceneParams

N = 12


def _video_frames(video: Path) -> list[np.ndarray]:
    return [f for _, f in iter_frames(video, range(N))]


def _write_folder(folder: Path, frames: list[np.ndarray], suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        # Unpadded numbers: a plain string sort would put frame_10 before frame_2.
        assert cv2.imwrite(str(folder / f"frame_{i}{suffix}"), f)
    return folder


@pytest.fixture()
def folder(synth_video: Path, tmp_path: Path) -> Path:
    return _write_folder(tmp_path / "cam", _video_frames(synth_video))


def test_folder_in_natural_order_gives_the_video_frames(synth_video: Path, folder: Path):
    files = frame_files(folder)
    assert [p.name for p in files] == [f"frame_{i}.png" for i in range(N)]
    info = open_video(folder)
    assert (info.kind, info.width, info.height, info.frame_count) == ("folder", synth.W, synth.H, N)
    assert info.fps == 25.0  # stills carry no rate
    got = list(iter_frames(folder, [11, 2, 0, 10, 99]))
    assert [i for i, _ in got] == [0, 2, 10, 11]
    every = _video_frames(synth_video)
    for i, frame in got:
        assert np.array_equal(frame, every[i]), f"frame {i} (file {files[i].name}) is not video frame {i}"


def test_yolo_folder_takes_images_only(synth_video: Path, tmp_path: Path):
    root = tmp_path / "dataset"
    _write_folder(root / "images", _video_frames(synth_video)[:3], ".jpg")
    _write_folder(root / "backgrounds", _video_frames(synth_video)[:5], ".jpg")
    (root / "labels").mkdir()
    assert [p.parent.name for p in frame_files(root)] == ["images"] * 3
    assert open_video(root).frame_count == 3


def test_glob_input_and_fps(folder: Path):
    pattern = str(folder / "frame_1*.png")  # frame_1, frame_10, frame_11
    assert [p.name for p in frame_files(pattern)] == ["frame_1.png", "frame_10.png", "frame_11.png"]
    info = open_video(pattern, fps=7.5)
    assert (info.kind, info.frame_count, info.fps) == ("glob", 3, 7.5)
    assert [i for i, _ in iter_frames(pattern, range(5))] == [0, 1, 2]
    assert SceneParams(fps=12.5).fps == 12.5
    with pytest.raises(ValueError):
        SceneParams(fps=0)


def test_fps_overrides_a_video_and_video_has_no_frame_files(synth_video: Path):
    assert frame_files(synth_video) is None
    assert open_video(synth_video).kind == "video"
    assert open_video(synth_video, fps=3.0).fps == 3.0


def test_header_sizes_match_decoded_sizes(tmp_path: Path):
    img = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".jpg", ".png", ".bmp"):
        path = tmp_path / f"x{suffix}"
        cv2.imwrite(str(path), img)
        assert image_size(path) == (53, 37), suffix
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8garbage")
    assert image_size(tmp_path / "junk.jpg") is None


def _one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(err.value)
    assert "\n" not in text and "--video" in text
    for part in parts:
        assert part in text, (part, text)


@pytest.mark.parametrize("where", ["probe", "read"])
def test_bad_image_in_a_folder_is_named(folder: Path, where: str):
    bad = folder / "frame_5.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(CctvkitError) as err:
        if where == "probe":
            open_video(folder)
        else:
            list(iter_frames(folder, [4, 5, 6]))
    _one_line(err, str(bad), "cannot decode")


def test_odd_sized_frame_is_named(folder: Path):
    odd = folder / "frame_7.png"
    cv2.imwrite(str(odd), np.zeros((synth.H // 2, synth.W, 3), np.uint8))
    cv2.imwrite(str(folder / "frame_9.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(CctvkitError) as err:
        open_video(folder)
    _one_line(err, str(odd), f"{synth.W}x{synth.H // 2}")


def test_empty_folder_and_empty_glob(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    for path in (empty, tmp_path / "nothing" / "*.jpg"):
        with pytest.raises(CctvkitError) as err:
            open_video(path)
        _one_line(err, str(path))
        with pytest.raises(CctvkitError):
            resolve_demo_video(Path(path))


def test_resolve_demo_video_accepts_folders_and_globs(folder: Path, synth_video: Path, tmp_path: Path):
    assert resolve_demo_video(folder) == folder
    assert resolve_demo_video(Path(str(folder / "*.png"))) == Path(str(folder / "*.png"))
    assert resolve_demo_video(synth_video) == synth_video
    with pytest.raises(CctvkitError):
        resolve_demo_video(tmp_path / "nope.avi")


def test_cli_bad_frame_exits_2_with_one_line(folder: Path, tmp_path: Path):
    (folder / "frame_3.png").write_bytes(b"broken")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "CCTVKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "trainer.cli", "scene", "--run", str(tmp_path / "runs" / "x"),
                           "--video", str(folder)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(folder / "frame_3.png") in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
