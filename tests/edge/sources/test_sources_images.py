"""The image-folder source on real files: sorted order, corrupt files counted and skipped, looping."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from sources_media import frame_number, numbered_frame

from edge.errors import CctvkitError
from edge.sources import Capture, ImagesConfig, make_source


def make_folder(folder: Path, n: int, corrupt: tuple[int, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}"
        if i in corrupt:
            path.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg" if path.suffix == ".jpg" else b"")
        else:
            assert cv2.imwrite(str(path), numbered_frame(i))
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def drain(cap: Capture, limit: int = 200) -> list[int]:
    numbers = []
    for _ in range(limit):
        frame = cap.latest(timeout=2.0)
        if frame is None:
            break
        numbers.append(frame_number(frame.image))
    return numbers


def test_sorted_images_with_one_corrupt_file(tmp_path: Path):
    folder = make_folder(tmp_path / "shots", 6, corrupt=(3,))
    with Capture(make_source({"type": "images", "path": str(folder)}), lossless=True) as cap:
        numbers = drain(cap)
        assert cap.finished
    assert numbers == [0, 1, 2, 4, 5]
    stats = cap.stats
    assert stats.corrupt == 1 and stats.captured == 5 and stats.disconnects == 0


def test_loop_relists_the_folder(tmp_path: Path):
    folder = make_folder(tmp_path / "shots", 3)
    with Capture(make_source(ImagesConfig(path=folder, loop=True)), lossless=True) as cap:
        first = [frame_number(cap.latest(timeout=2.0).image) for _ in range(3)]  # type: ignore[union-attr]
        cv2.imwrite(str(folder / "img_999.png"), numbered_frame(9))  # sorts last: joins the next pass
        later = drain(cap, limit=8)
    assert first == [0, 1, 2]
    # Depending on when the next pass was listed, the new file shows up in it or in the one after.
    assert later[:3] == [0, 1, 2] and 9 in later


def test_a_folder_of_only_corrupt_images_does_not_spin(tmp_path: Path):
    folder = make_folder(tmp_path / "bad", 3, corrupt=(0, 1, 2))
    events: list[str] = []
    cap = Capture(make_source(ImagesConfig(path=folder, loop=True)), backoff_initial=0.2, backoff_max=0.2,
                  on_event=lambda e, d: events.append(e))
    with cap:
        assert cap.latest(timeout=0.5) is None
    # Each pass of 3 corrupt files ends in a failure and a backoff, not a busy loop.
    assert 3 <= cap.stats.corrupt <= 3 * 6
    assert "disconnected" in events


def test_bad_folders_are_one_line_errors(tmp_path: Path):
    with pytest.raises(CctvkitError, match="image folder not found"):
        make_source({"type": "images", "path": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(CctvkitError, match="no images") as e:
        make_source({"type": "images", "path": str(tmp_path / "empty")})
    assert ".jpg" in str(e.value) and "\n" not in str(e.value)


def test_fps_paces_the_folder(tmp_path: Path):
    import time

    folder = make_folder(tmp_path / "shots", 5)
    with Capture(make_source(ImagesConfig(path=folder, fps=20)), lossless=True) as cap:
        t0 = time.monotonic()
        assert len(drain(cap)) == 5
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.7 * 4 / 20
