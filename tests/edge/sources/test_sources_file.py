"""The video-file source on real MJPG AVIs written here (and OpenCV's vtest.avi when ../shared/data exists)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sources_media import H, W, frame_number, write_mjpg_avi

from edge.errors import CctvkitError
from edge.sources import Capture, EndOfStream, FileConfig, make_source
from edge.sources.file import FileSource


def read_all(source: FileSource, limit: int = 1000) -> list[int]:
    source.open()
    numbers: list[int] = []
    try:
        for _ in range(limit):
            numbers.append(frame_number(source.read()))
    except EndOfStream:
        return numbers
    finally:
        source.close()
    raise AssertionError(f"no end of stream after {limit} frames")


def test_reads_every_frame_in_order_then_ends(tmp_path: Path):
    video = write_mjpg_avi(tmp_path / "clip.avi", 12)
    source = make_source({"type": "file", "path": str(video)})
    assert isinstance(source, FileSource)
    assert read_all(source) == list(range(12))
    assert source.fps == pytest.approx(10.0)


def test_capture_of_a_finite_file_finishes_with_every_frame(tmp_path: Path):
    video = write_mjpg_avi(tmp_path / "clip.avi", 15)
    events: list[str] = []
    cap = Capture(make_source(FileConfig(path=video)), lossless=True, on_event=lambda e, d: events.append(e))
    with cap:
        got = []
        for _ in range(100):  # bounded: 15 frames, then None once finished
            frame = cap.latest(timeout=2.0)
            if frame is None:
                break
            assert frame.image.shape == (H, W, 3)
            got.append((frame.index, frame_number(frame.image)))
        assert cap.finished
    assert got == [(i, i) for i in range(15)]
    assert events == ["connected", "finished"]
    assert cap.stats.captured == 15 and cap.stats.dropped == 0 and cap.stats.reconnects == 0


def test_loop_starts_again_at_the_end(tmp_path: Path):
    video = write_mjpg_avi(tmp_path / "clip.avi", 8)
    with Capture(make_source(FileConfig(path=video, loop=True)), lossless=True) as cap:
        numbers = []
        for _ in range(20):
            frame = cap.latest(timeout=2.0)
            assert frame is not None
            numbers.append(frame_number(frame.image))
        assert not cap.finished
    assert numbers == [i % 8 for i in range(20)]
    assert cap.stats.disconnects == 0


def test_realtime_paces_reads_at_the_files_fps(tmp_path: Path):
    fps, n = 20.0, 10
    video = write_mjpg_avi(tmp_path / "clip.avi", n, fps=fps)
    fast = make_source(FileConfig(path=video))
    t0 = time.monotonic()
    assert len(read_all(fast)) == n  # type: ignore[arg-type]
    unpaced = time.monotonic() - t0

    paced = make_source(FileConfig(path=video, realtime=True))
    t0 = time.monotonic()
    assert read_all(paced) == list(range(n))  # type: ignore[arg-type]
    elapsed = time.monotonic() - t0
    # n frames at 20 fps span (n - 1) / fps = 0.45 s; loose bounds, no tight timing.
    assert elapsed >= 0.7 * (n - 1) / fps, f"realtime read {n} frames in {elapsed:.3f} s"
    assert elapsed < 5.0
    assert unpaced < elapsed


def test_realtime_fps_override_and_stop_does_not_wait_for_a_slow_frame(tmp_path: Path):
    video = write_mjpg_avi(tmp_path / "clip.avi", 5)
    cap = Capture(make_source(FileConfig(path=video, realtime=True, fps=0.5, loop=True)))
    cap.start()
    assert cap.latest(timeout=2.0) is not None  # the first frame comes at once
    time.sleep(0.1)  # now the thread sleeps ~2 s before frame 2
    t0 = time.monotonic()
    assert cap.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert not cap.running


def test_missing_or_unreadable_file_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(CctvkitError, match="video file not found") as e:
        make_source({"type": "file", "path": str(tmp_path / "nope.avi")})
    assert "\n" not in str(e.value) and "nope.avi" in str(e.value)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(CctvkitError, match="cannot open") as e:
        make_source({"type": "file", "path": str(junk)})
    assert "junk.avi" in str(e.value)


def test_a_file_deleted_and_recreated_is_reconnected(tmp_path: Path):
    """A non-looping file that ends is finished, but a file that cannot be opened is a fault: retried."""
    video = write_mjpg_avi(tmp_path / "clip.avi", 3)
    source = make_source(FileConfig(path=video, loop=True))
    video.unlink()
    events: list[str] = []
    with Capture(source, backoff_initial=0.05, backoff_max=0.1, on_event=lambda e, d: events.append(e)) as cap:
        assert cap.latest(timeout=0.3) is None and not cap.connected
        write_mjpg_avi(video, 3)
        frame = cap.latest(timeout=3.0)
        assert frame is not None and cap.connected
    assert events[0] == "open_failed" and "connected" in events


@pytest.mark.real
def test_vtest_avi():
    vtest_video = Path(__file__).resolve().parents[4] / "shared" / "data" / "vtest" / "vtest.avi"
    if not vtest_video.is_file():
        pytest.skip("needs ../shared/data")
    source = make_source({"type": "file", "path": str(vtest_video), "realtime": False})
    assert isinstance(source, FileSource)
    source.open()
    try:
        assert source.fps == pytest.approx(10.0)
        frames = [source.read() for _ in range(20)]
    finally:
        source.close()
    assert all(f.shape == (576, 768, 3) and f.dtype.name == "uint8" for f in frames)
    assert frames[0].std() > 10  # a real picture, not a blank


def test_a_fast_file_waits_for_a_slow_consumer_but_a_realtime_one_drops(tmp_path: Path):
    """Default Capture mode: a file read as fast as it decodes is not live, so no frame is thrown away;
    in realtime it behaves like a camera and a slow consumer only ever gets the newest frame."""
    video = write_mjpg_avi(tmp_path / "clip.avi", 10, fps=100.0)
    with Capture(make_source(FileConfig(path=video))) as cap:
        assert cap.lossless
        got = []
        for _ in range(10):
            frame = cap.latest(timeout=2.0)
            assert frame is not None
            got.append(frame_number(frame.image))
            time.sleep(0.02)
    assert got == list(range(10)) and cap.stats.dropped == 0

    with Capture(make_source(FileConfig(path=video, realtime=True, loop=True))) as cap:
        assert not cap.lossless
        got = []
        for _ in range(5):
            frame = cap.latest(timeout=2.0)
            assert frame is not None
            got.append(frame.index)
            time.sleep(0.06)  # the "camera" makes a frame every 10 ms
    assert cap.stats.dropped > 0
    assert all(b - a > 1 for a, b in zip(got[1:], got[2:], strict=False)), got
