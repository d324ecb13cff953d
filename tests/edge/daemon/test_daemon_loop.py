"""The daemon loop in-process (real model, real file source, real sockets): the motion gate's saving, a
stuck loop silencing the watchdog, a records disk that is full, a camera that goes away and comes back."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_helpers import (
    NotifyListener,
    base_config,
    bright_then_dark,
    fill,
    make_run,
    moving_frames,
    static_frames,
    write_video,
)

from edge.config import DaemonConfig
from edge.daemon import Daemon
from edge.records import Event, RecordSink, RotationPolicy
from edge.records.jsonl import JsonlRecorder
from edge.sdnotify import Notifier


def config(tmp_path: Path, frames, **sections) -> DaemonConfig:
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", frames)
    return DaemonConfig.model_validate(base_config(run, video, **sections))


def health(d: Daemon) -> tuple[int, dict]:
    assert d.http is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.http.port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


class Running:
    """Daemon.run() on a thread, stopped (and joined) on exit."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(daemon.run()), daemon=True)

    def __enter__(self) -> Daemon:
        self.thread.start()
        assert wait_until(lambda: self.daemon.metrics is not None and self.daemon.metrics.ready._value.get() == 1,
                          20), "daemon did not get ready"
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("kind", ["static", "moving"])
def test_motion_gate_skips_a_static_scene_and_not_a_moving_one(tmp_path, kind):
    frames = static_frames(40) if kind == "static" else moving_frames(40)
    cfg = config(tmp_path, frames, capture={"lossless": True}, http={"enabled": False},
                 motion={"enabled": True, "max_skip_s": 60})
    d = Daemon(cfg, notifier=Notifier(None))
    assert d.run() == 0  # a non-looping file ends the run
    st = d.state
    assert st.processed + st.skipped == 40
    if kind == "static":
        assert st.processed == 1 and st.skipped == 39
    else:
        assert st.skipped == 0
    assert d.metrics is not None
    assert d.metrics.frames_motion_skipped._value.get() == st.skipped


def test_motion_gate_saving_is_measured(tmp_path):
    frames = static_frames(30)
    off = Daemon(config(tmp_path / "a", frames, capture={"lossless": True}, http={"enabled": False}),
                 notifier=Notifier(None))
    on = Daemon(config(tmp_path / "b", frames, capture={"lossless": True}, http={"enabled": False},
                       motion={"enabled": True, "max_skip_s": 60}), notifier=Notifier(None))
    assert off.run() == 0 and on.run() == 0
    assert off.state.processed == 30 and on.state.processed == 1
    assert on.metrics is not None and on.gate is not None
    saved = on.metrics.inference_seconds_saved._value.get()
    assert saved == pytest.approx(29 * on.state.latency_ema_s, rel=0.3) and saved > 0
    motion_s = on.metrics.stage_seconds.labels("motion")._value.get()
    assert motion_s == pytest.approx(on.gate.stats.check_seconds) and motion_s > 0


class BlockingRecorder(JsonlRecorder):
    """A real JSONL recorder whose write() can be made to hang, like a wedged disk or driver."""

    def __init__(self, path: Path):
        super().__init__(path, RotationPolicy())
        self.block = threading.Event()
        self.release = threading.Event()
        self.blocked = threading.Event()

    def write(self, event: Event) -> None:
        if self.block.is_set():
            self.blocked.set()
            self.release.wait(10)
        super().write(event)


def test_a_stuck_loop_stops_the_watchdog_and_fails_healthz(tmp_path, monkeypatch):
    notify = NotifyListener(tmp_path / "n.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # pings every 0.1 s while the loop turns
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = config(tmp_path, bright_then_dark(10, 0), source={"loop": True, "realtime": True, "fps": 50},
                 http={"healthz_max_age_s": 0.5})
    rec = BlockingRecorder(tmp_path / "ev.jsonl")
    d = Daemon(cfg, notifier=Notifier(str(notify.path)), sink=RecordSink([rec]))
    try:
        with Running(d):
            try:
                assert notify.wait_for("WATCHDOG=1", 5) is not None
                assert health(d)[0] == 200
                rec.block.set()
                assert rec.blocked.wait(5)  # the loop is now stuck inside a write
                notify.drain()
                time.sleep(0.8)
                assert "WATCHDOG=1" not in notify.drain()  # a stuck loop sends no pings: systemd restarts it
                code, body = health(d)
                assert code == 503 and "inference loop has not run" in body["reason"]
            finally:
                rec.block.clear()
                rec.release.set()
            notify.drain()
            since = len(notify.messages)
            assert notify.wait_for("WATCHDOG=1", 5, since=since) is not None  # pings resume once unstuck
            assert wait_until(lambda: health(d)[0] == 200, 5)
    finally:
        notify.close()


def test_records_disk_full_is_logged_and_inference_goes_on(tmp_path, tiny_fs, caplog):
    fill(tiny_fs)
    cfg = config(tmp_path, bright_then_dark(20, 0), capture={"lossless": True}, http={"enabled": False},
                 records={"jsonl": str(tiny_fs / "ev.jsonl"), "sqlite": str(tiny_fs / "ev.db")})
    with caplog.at_level("ERROR"):
        d = Daemon(cfg, notifier=Notifier(None))
        try:
            code = d.run()
        except Exception as e:  # the sqlite file may not even be creatable on a full disk
            pytest.fail(f"daemon failed on a full disk: {e}")
    assert code == 0 and d.state.processed == 20
    assert d.sink is not None and d.sink.errors >= 20
    assert any("failed" in r.message and "inference goes on" in r.message for r in caplog.records)


def test_camera_going_away_is_counted_as_a_reconnect(tmp_path):
    cfg = config(tmp_path, bright_then_dark(5, 0), source={"loop": True, "realtime": True, "fps": 50},
                 capture={"backoff_initial_s": 0.05, "backoff_max_s": 0.1}, http={"healthz_max_age_s": 0.4})
    video = tmp_path / "v.avi"
    d = Daemon(cfg, notifier=Notifier(None))
    with Running(d):
        assert d.capture is not None
        assert wait_until(lambda: d.state.processed >= 5, 5)
        os.rename(video, tmp_path / "gone.avi")  # the file source re-opens at its end: now it cannot
        assert wait_until(lambda: not d.capture.connected, 5)
        assert wait_until(lambda: health(d)[0] == 503, 5)
        assert "no frame from the camera" in health(d)[1]["reason"]
        os.rename(tmp_path / "gone.avi", video)
        assert wait_until(lambda: d.capture.stats.reconnects >= 1 and health(d)[0] == 200, 5)
        assert d.metrics is not None
        text = d.metrics.exposition().decode()
        assert "cctvkit_camera_reconnects_total 1.0" in text or "cctvkit_camera_reconnects_total 2.0" in text
