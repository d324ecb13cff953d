"""The stream source through OpenCV's FFmpeg on a real MJPEG-over-HTTP server on 127.0.0.1 that is killed
mid-stream (connections cut, port closed) and brought back, or that goes silent with the socket open."""

from __future__ import annotations

import time

import pytest
from sources_media import MjpegServer, frame_number

from edge.errors import CctvkitError
from edge.sources import Capture, StreamConfig, make_source, parse_source_config
from edge.sources.stream import mask_url


def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_stream_cut_for_real_then_back_is_one_reconnect():
    server = MjpegServer(fps=50, shade=60).start()
    events: list[tuple[str, float]] = []
    source = make_source({"type": "stream", "url": server.url, "open_timeout_s": 2, "read_timeout_s": 1})
    cap = Capture(source, backoff_initial=0.1, backoff_max=0.4,
                  on_event=lambda e, d: events.append((e, time.monotonic())))
    try:
        cap.start()
        frame = cap.latest(timeout=5.0)
        assert frame is not None and frame.image.shape == (48, 64, 3)
        assert abs(int(frame.image[40, 32, 0]) - 60) < 8  # the first server's shade
        assert cap.connected
        assert wait_until(lambda: cap.stats.captured >= 10, 5.0)

        server.kill()
        killed_at = time.monotonic()
        assert wait_until(lambda: not cap.connected, 3.0), "a cut stream must be noticed"
        assert cap.running and cap.stats.reconnects == 0
        time.sleep(0.5)  # down for a while: failed re-opens back off, nothing crashes
        assert cap.running and not cap.connected

        revived = MjpegServer(port=server.port, fps=50, shade=200).start()
        back_at = time.monotonic()
        try:
            assert wait_until(lambda: cap.stats.reconnects == 1, 5.0), cap.stats
            # Frames flow again, from the new server.
            for _ in range(50):
                frame = cap.latest(timeout=2.0)
                assert frame is not None
                if abs(int(frame.image[40, 32, 0]) - 200) < 8:
                    break
            else:
                raise AssertionError("no frame from the revived server")
            assert frame_number(frame.image) < 256
        finally:
            revived.kill()
    finally:
        assert cap.stop(timeout=3.0)
        server.kill()
    names = [e for e, _ in events]
    assert names[0] == "connected"
    assert "disconnected" in names and names.count("reconnected") == 1
    detected = next(t for e, t in events if e == "disconnected") - killed_at
    reconnected = next(t for e, t in events if e == "reconnected") - back_at
    assert detected < 2.0
    # Backoff is capped at 0.4 s: the revived server is picked up within a cap plus an open.
    assert reconnected < 2.0
    print(f"\ncut noticed after {detected * 1000:.0f} ms; reconnected {reconnected * 1000:.0f} ms after the "
          f"server came back; stats {cap.stats}")


def test_a_silent_stream_times_out_instead_of_hanging():
    server = MjpegServer(fps=50).start()
    server.stall_after = 5  # sends 5 frames, then keeps the connection open and says nothing
    cap = Capture(make_source(StreamConfig(url=server.url, read_timeout_s=0.5)), backoff_initial=5.0,
                  backoff_max=5.0)
    try:
        cap.start()
        assert cap.latest(timeout=5.0) is not None
        t0 = time.monotonic()
        assert wait_until(lambda: cap.stats.disconnects == 1, 4.0), "a stalled read must time out"
        assert time.monotonic() - t0 < 3.0
        assert "stalled" in (cap.last_error or "")
    finally:
        server.kill()
        # The thread is in its 5 s backoff wait: stop() must still return at once.
        assert cap.stop(timeout=1.0)


def test_unreachable_stream_is_retried_not_fatal():
    server = MjpegServer().start()
    port = server.port
    server.kill()  # nothing listens on this port any more
    events: list[str] = []
    cap = Capture(make_source({"type": "stream", "url": f"http://127.0.0.1:{port}/x.mjpg", "open_timeout_s": 1}),
                  backoff_initial=0.05, backoff_max=0.1, on_event=lambda e, d: events.append(e))
    with cap:
        assert cap.latest(timeout=0.5) is None
        assert cap.running
    assert events.count("open_failed") >= 2 and "connected" not in events


def test_stream_config_is_checked():
    with pytest.raises(CctvkitError, match="url") as e:
        parse_source_config({"type": "stream", "url": "ftp://cam/x"})
    assert "rtsp://" in str(e.value)
    with pytest.raises(CctvkitError, match="unknown key 'timeout'") as e:
        parse_source_config({"type": "stream", "url": "rtsp://cam/x", "timeout": 3})
    assert "read_timeout_s" in str(e.value)


def test_passwords_never_reach_the_logs():
    url = "rtsp://admin:s3cret@192.168.1.10:554/stream1"
    assert mask_url(url) == "rtsp://admin:***@192.168.1.10:554/stream1"
    assert "s3cret" not in make_source({"type": "stream", "url": url}).describe()
