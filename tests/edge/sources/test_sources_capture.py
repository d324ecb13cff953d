"""Capture: latest-frame hand-over, bounded memory, frame validation, backoff and stop.

The sources here are small real Source subclasses (a counter camera, a flaky one): Capture is the thing
under test and runs for real on its own thread."""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest

from edge.sources import Capture, CorruptFrame, Source, SourceError


class CounterCamera(Source):
    """Numbered 32x32 frames every `period` s; keeps weak references to count frames still alive."""

    name = "counter"

    def __init__(self, period: float = 0.002, bad: dict[int, object] | None = None):
        super().__init__(None)
        self.period = period
        self.bad = bad or {}
        self.n = 0
        self.refs: list[weakref.ref[np.ndarray]] = []
        self.opened = 0

    def open(self) -> None:
        self.opened += 1

    def read(self) -> np.ndarray:
        self.sleep(self.period)
        i = self.n
        self.n += 1
        if i in self.bad:
            if isinstance(self.bad[i], Exception):
                raise self.bad[i]  # type: ignore[misc]
            return self.bad[i]  # type: ignore[return-value]
        img = np.zeros((32, 32, 3), np.uint8)
        img[0, 0, 0], img[0, 0, 1] = i & 0xFF, (i >> 8) & 0xFF
        self.refs = [r for r in self.refs if r() is not None] + [weakref.ref(img)]
        return img

    def close(self) -> None:
        pass

    @property
    def alive(self) -> int:
        return sum(r() is not None for r in self.refs)


def number(img: np.ndarray) -> int:
    return int(img[0, 0, 0]) | int(img[0, 0, 1]) << 8


def test_slow_consumer_gets_ever_newer_frames_and_memory_stays_bounded():
    cam = CounterCamera(period=0.002)
    max_alive = 0
    seen: list[int] = []
    with Capture(cam) as cap:
        for _ in range(8):  # a consumer 20x slower than the camera
            frame = cap.latest(timeout=2.0)
            assert frame is not None
            seen.append(number(frame.image))
            assert frame.index == number(frame.image)
            time.sleep(0.04)
            max_alive = max(max_alive, cam.alive)
        stats = cap.stats
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False)), seen
    assert seen[-1] - seen[0] > 8  # skipped ahead, never worked through a backlog
    assert stats.dropped > 0
    # Frames are handed over, never queued: captured = taken + dropped (+ at most one waiting in the slot).
    assert stats.captured - stats.dropped - len(seen) in (0, 1)
    # At any moment: the consumer's frame, the slot's and the one being made; nothing piles up.
    assert max_alive <= 3, max_alive


def test_latest_returns_none_after_timeout_and_each_frame_only_once():
    cam = CounterCamera(period=0.3)
    with Capture(cam) as cap:
        first = cap.latest(timeout=2.0)
        assert first is not None
        t0 = time.monotonic()
        assert cap.latest(timeout=0.05) is None  # the next frame is ~0.3 s away: no repeat of the first
        assert time.monotonic() - t0 < 1.0


def test_malformed_frames_are_counted_corrupt_and_skipped():
    bad = {
        1: np.zeros((32, 32), np.uint8),  # grey
        2: np.zeros((32, 32, 4), np.uint8),  # BGRA
        3: np.zeros((32, 32, 3), np.float32),  # wrong dtype
        4: np.zeros((0, 32, 3), np.uint8),  # empty
        5: None,
        6: CorruptFrame("undecodable JPEG"),  # what a source raises itself
    }
    cam = CounterCamera(period=0.001, bad=bad)
    with Capture(cam, lossless=True) as cap:
        got = [number(cap.latest(timeout=2.0).image) for _ in range(3)]  # type: ignore[union-attr]
    assert got == [0, 7, 8]
    assert cap.stats.corrupt == 6 and cap.stats.disconnects == 0


class FlakyCamera(CounterCamera):
    """Fails open() `fail_opens` times, then delivers `frames_per_life` frames per connection and dies."""

    def __init__(self, fail_opens: int = 0, frames_per_life: int = 1000):
        super().__init__(period=0.001)
        self.fail_opens = fail_opens
        self.frames_per_life = frames_per_life
        self.life = 0
        self.open_times: list[float] = []
        self.fail_times: list[float] = []

    def open(self) -> None:
        self.open_times.append(time.monotonic())
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("camera not there yet")
        self.life = 0
        super().open()

    def read(self) -> np.ndarray:
        if self.life >= self.frames_per_life:
            self.fail_times.append(time.monotonic())
            raise SourceError("unplugged")
        self.life += 1
        return super().read()


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter():
    cap = Capture(CounterCamera(), backoff_initial=0.5, backoff_max=4.0, jitter=0.2)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (60, 4.0)]:
        delays = [cap.backoff_delay(failures) for _ in range(50)]
        assert all(0.8 * base - 1e-9 <= d <= base for d in delays), (failures, min(delays), max(delays))
    with pytest.raises(ValueError):
        Capture(CounterCamera(), backoff_initial=2.0, backoff_max=1.0)


def test_failed_opens_back_off_then_connect_and_flapping_counts_reconnects():
    cam = FlakyCamera(fail_opens=3, frames_per_life=5)
    events: list[tuple[str, str]] = []
    cap = Capture(cam, backoff_initial=0.02, backoff_max=0.08, jitter=0.0, healthy_after=60,
                  on_event=lambda e, d: events.append((e, d)))
    with cap:
        deadline = time.monotonic() + 3.0
        while cap.stats.reconnects < 2 and time.monotonic() < deadline:
            cap.latest(timeout=0.1)
    stats = cap.stats
    names = [e for e, _ in events]
    assert names[:4] == ["open_failed"] * 3 + ["connected"]
    assert "retrying in" in events[0][1]
    assert stats.reconnects >= 2 and stats.disconnects >= 2
    assert names.count("reconnected") == stats.reconnects
    # Gaps between the failed opens double: 0.02, 0.04, 0.08 s (a wait never ends early; it may end late).
    gaps = np.diff(cam.open_times[:4])
    assert gaps[0] >= 0.019 and gaps[1] >= 0.039 and gaps[2] >= 0.079, gaps


def test_backoff_restarts_small_after_a_healthy_period():
    cam = FlakyCamera(fail_opens=4, frames_per_life=60)  # one life lasts ~60 ms at 1 ms a frame
    cap = Capture(cam, backoff_initial=0.02, backoff_max=1.0, jitter=0.0, healthy_after=0.03)
    with cap:
        deadline = time.monotonic() + 3.0
        while cap.stats.reconnects < 1 and time.monotonic() < deadline:
            cap.latest(timeout=0.1)
    # After 4 failed opens the delay was 0.16 s; the >= 60 ms life was "healthy" (> 30 ms), so the wait
    # after it starts again at 0.02 s instead of going on to 0.32 s.
    assert cap.stats.reconnects == 1
    wait = cam.open_times[5] - cam.fail_times[0]
    assert 0.019 <= wait < 0.2, wait


def test_a_stream_of_only_corrupt_frames_is_treated_as_a_failure():
    cam = CounterCamera(period=0.0005, bad={i: None for i in range(10_000)})
    events: list[str] = []
    with Capture(cam, max_corrupt_in_a_row=20, backoff_initial=0.05, on_event=lambda e, d: events.append(e)) as cap:
        time.sleep(0.2)
    assert "disconnected" in events
    assert cap.stats.corrupt <= 20 * 6  # backoff between bursts, not a spinning thread


def test_a_raising_event_callback_does_not_kill_capture():
    def boom(event: str, detail: str) -> None:
        raise RuntimeError("logging is broken")

    with Capture(CounterCamera(), on_event=boom) as cap:
        assert cap.latest(timeout=2.0) is not None
        assert cap.running


def test_stop_joins_quickly_and_wakes_a_waiting_consumer():
    cap = Capture(CounterCamera(period=5.0)).start()  # the source sleeps 5 s per frame
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(cap.latest(timeout=10.0)))
    waiter.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    assert cap.stop(timeout=2.0)
    waiter.join(2.0)
    assert time.monotonic() - t0 < 1.0
    assert results == [None] and not cap.running and not cap.connected
    with pytest.raises(RuntimeError):
        cap.start()
