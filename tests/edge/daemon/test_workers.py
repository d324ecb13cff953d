"""model.workers > 1: several model instances on their own threads (edge/workers.py) behind the daemon.
Real ONNX Runtime model, real file source, real records, real sockets and a real subprocess."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from daemon_helpers import (
    DaemonProcess,
    NotifyListener,
    base_config,
    bright_then_dark,
    http_get,
    make_run,
    static_frames,
    textured,
    write_config,
    write_video,
)
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_loop import Running, health, wait_until
from test_daemon_process import scrape, value

from edge.config import DaemonConfig, ModelConfig, load_config, usable_cores
from edge.daemon import Daemon
from edge.daemon_model import Model
from edge.errors import CctvkitError
from edge.records import Event
from edge.sdnotify import Notifier


def config(tmp_path: Path, frames: list[np.ndarray], workers: int = 2, **sections) -> DaemonConfig:
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", frames)
    doc = base_config(run, video, model={"workers": workers, "threads": 1}, **sections)
    return DaemonConfig.model_validate(doc)


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def metrics(d: Daemon) -> dict[str, float]:
    """Every sample of the daemon's /metrics text by its name (what a scrape would get)."""
    assert d.metrics is not None
    text = d.metrics.exposition().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_two_workers_process_every_frame_and_the_counts_match(tmp_path):
    cfg = config(tmp_path, bright_then_dark(15, 15), capture={"lossless": True}, http={"enabled": False},
                 records={"jsonl": str(tmp_path / "ev.jsonl"), "leave_after_s": 0.0})
    d = Daemon(cfg, notifier=Notifier(None))
    assert d.run() == 0  # the non-looping file ends the run once both workers are done
    assert d.pool is not None and d.pool.size == 2 and len(d.models) == 2
    assert d.models[0] is not d.models[1] and d.models[0].backend is not d.models[1].backend
    assert d.state.processed == 30 and sum(d.pool.processed) == 30
    assert min(d.pool.processed) >= 1, d.pool.processed  # both workers took frames
    got = metrics(d)
    assert got["cctvkit_frames_processed_total"] == 30
    assert got["cctvkit_frames_captured_total"] == 30 and got["cctvkit_frames_dropped_total"] == 0
    assert got["cctvkit_inference_latency_seconds_count"] == 30
    assert got["cctvkit_persons_in_view"] == 0  # the newest frame is dark
    lines = records(tmp_path / "ev.jsonl")
    assert got["cctvkit_records_written_total"] == len(lines)
    dets = [e for e in lines if e["kind"] == "detection"]
    assert sorted(e["frame"] for e in dets) == list(range(15))  # every bright frame exactly once
    assert all(e["count"] == 1 and 0 < e["latency_ms"] < 1000 for e in dets)
    assert [e["state"] for e in lines if e["kind"] == "presence"] == ["appeared", "left"]


class SlowFrame(Daemon):
    """A real daemon whose inference of one frame takes `delay` s longer (a hiccup on one worker)."""

    def __init__(self, cfg: DaemonConfig, slow_index: int, delay: float):
        super().__init__(cfg, notifier=Notifier(None))
        self.slow_index, self.delay = slow_index, delay

    def _infer(self, model: Model, image: np.ndarray, index: int) -> tuple[int, Event | None]:
        if index == self.slow_index:
            time.sleep(self.delay)
        return super()._infer(model, image, index)


def test_a_late_result_for_an_older_frame_does_not_reopen_presence(tmp_path):
    # Frame 14 is the last bright one; its result comes back after the dark frames behind it (the other
    # worker runs them meanwhile), and after frame 15 has closed the presence.
    cfg = config(tmp_path, bright_then_dark(15, 15), capture={"lossless": True}, http={"enabled": False},
                 records={"jsonl": str(tmp_path / "ev.jsonl"), "leave_after_s": 0.0})
    d = SlowFrame(cfg, slow_index=14, delay=0.5)
    assert d.run() == 0
    assert d.state.processed == 30 and d.state.persons == 0
    lines = records(tmp_path / "ev.jsonl")
    order = [(e["kind"], e.get("state") or e["frame"]) for e in lines]
    # It did arrive late: recorded after the "left" that frame 15 caused ...
    assert order.index(("detection", 14)) > order.index(("presence", "left")), order
    # ... and is still recorded and counted, but presence did not flip back to "appeared" and "left" again.
    assert [e["state"] for e in lines if e["kind"] == "presence"] == ["appeared", "left"]
    assert sorted(e["frame"] for e in lines if e["kind"] == "detection") == list(range(15))


class StuckFrame(Daemon):
    """A real daemon whose inference hangs on one frame until released (a wedged runtime on one worker)."""

    def __init__(self, cfg: DaemonConfig, notifier: Notifier):
        super().__init__(cfg, notifier=notifier)
        self.stuck_at: int | None = None
        self.stick, self.stuck, self.release = threading.Event(), threading.Event(), threading.Event()

    def _infer(self, model: Model, image: np.ndarray, index: int) -> tuple[int, Event | None]:
        if self.stick.is_set() and self.stuck_at is None:
            self.stuck_at = index
            self.stuck.set()
            self.release.wait(10)
        return super()._infer(model, image, index)


def test_one_stuck_worker_silences_the_watchdog_and_fails_healthz(tmp_path, monkeypatch):
    notify = NotifyListener(tmp_path / "n.sock")
    # Pings every 0.1 s; a worker silent for max(WatchdogSec, 1 s) stops them (idle workers beat every
    # 0.5 s at worst, so the daemon never reads a short WatchdogSec as stuck).
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = config(tmp_path, bright_then_dark(10, 0), source={"loop": True, "realtime": True, "fps": 50},
                 http={"healthz_max_age_s": 0.5})
    d = StuckFrame(cfg, Notifier(str(notify.path)))
    try:
        with Running(d):
            try:
                # Frames arrive at 50 fps and take ~1 ms: the workers mostly wait for frames, which must
                # keep the pings going (an idle source is not a stuck daemon).
                assert notify.wait_for("WATCHDOG=1", 5) is not None
                assert health(d)[0] == 200 and health(d)[1]["workers"] == 2
                d.stick.set()
                assert d.stuck.wait(5)
                time.sleep(1.2)
                notify.drain()
                processed = d.state.processed
                time.sleep(0.8)
                assert "WATCHDOG=1" not in notify.drain()  # the other worker and the loop run, yet no pings
                assert d.state.processed > processed  # (they do run: the other worker goes on)
                code, body = health(d)
                assert code == 503 and "inference loop has not run" in body["reason"]
                assert d.metrics is not None  # the loop-turn timestamp shows the stuck worker's age too
                assert time.time() - d.metrics.last_loop._value.get() > 1.5
            finally:
                d.release.set()
            since = len(notify.messages)
            assert notify.wait_for("WATCHDOG=1", 5, since=since) is not None  # pings resume once unstuck
            assert wait_until(lambda: health(d)[0] == 200, 5)
    finally:
        notify.close()


def test_sigterm_stops_two_workers_fast_and_flushes(tmp_path, notify: NotifyListener):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(8, 8))
    doc = base_config(run, video, model={"workers": 2, "threads": 1},
                      source={"loop": True, "realtime": True, "fps": 40},
                      records={"jsonl": "ev.jsonl", "sqlite": "ev.db", "leave_after_s": 0.05})
    d = DaemonProcess(write_config(tmp_path / "edge.yaml", doc),
                      env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "600000"})
    try:
        ready = notify.wait_for("READY=1", timeout=30)
        assert ready is not None, d.log
        assert "2 workers x 1 threads" in d.log and d.log.index("warmed up") < d.log.index("ready:")
        port = int(re.search(r"http port (\d+)", ready).group(1))  # type: ignore[union-attr]
        assert notify.wait_for("WATCHDOG=1", timeout=5) is not None
        assert wait_until(lambda: value(scrape(port), "cctvkit_frames_processed") >= 20, 10)
        fams = scrape(port)
        n = value(fams, "cctvkit_frames_processed")
        # Counted once per frame: the histogram and the counter are updated together (a scrape may fall
        # between the two updates of one frame).
        assert abs(value(fams, "cctvkit_inference_latency_seconds_count") - n) <= 1
        assert value(fams, "cctvkit_frames_captured") >= n
        code, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200 and json.loads(body)["workers"] == 2, body
        code, seconds = d.terminate(timeout=5)
        assert code == 0, d.log
        assert seconds < 2.0
    finally:
        d.kill()
    assert "Traceback" not in d.log
    m = re.search(r"stopped in [\d.]+ s: (\d+) frames processed \((\d+) \+ (\d+) by 2 workers\)", d.log)
    assert m, d.log
    assert int(m.group(1)) == int(m.group(2)) + int(m.group(3)) >= 20
    lines = records(tmp_path / "ev.jsonl")
    assert ("presence", "appeared") in [(e["kind"], e.get("state")) for e in lines]
    assert any(e["kind"] == "detection" for e in lines)


def test_a_failing_worker_ends_the_daemon_non_zero_with_the_reason(tmp_path, notify: NotifyListener):
    # The model fails inside ONNX Runtime on very bright frames (after a clean load and warm-up).
    run = make_run(tmp_path / "run", crash_above=0.8)
    square = (128, 128)  # no letterbox padding: the model's input mean is the frame's brightness
    frames = [textured(i, size=square, level=170) for i in range(8)]  # persons, no crash
    frames += [textured(i, size=square, level=245) for i in range(4)]  # crash
    video = write_video(tmp_path / "v.avi", frames)
    cores = usable_cores()
    doc = base_config(run, video, model={"workers": 2, "threads": cores}, capture={"lossless": True},
                      records={"jsonl": "ev.jsonl"})
    d = DaemonProcess(write_config(tmp_path / "edge.yaml", doc), env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        code = d.wait(30)
    finally:
        d.kill()
    assert code == 1, d.log
    assert notify.wait_for("READY=1", timeout=1) is not None  # it failed while running, not at start-up
    # 2 x cores threads: a warning, and it ran all the same.
    assert re.search(rf"WARNING .*model.workers x model.threads = 2 x {cores} = {2 * cores} threads", d.log)
    assert re.search(r"ERROR edge.workers: inference worker [12] of 2 failed:\nTraceback", d.log), d.log
    assert "indices element out of data bounds" in d.log
    assert re.search(r"ERROR edge.daemon: inference worker [12] of 2 failed: \w+: .*exiting with status 1",
                     d.log), d.log
    assert "stopped in" in d.log  # the shutdown ran: records flushed and closed
    dets = [e for e in records(tmp_path / "ev.jsonl") if e["kind"] == "detection"]
    assert len(dets) >= 6 and all(e["frame"] < 8 for e in dets)


def test_motion_gate_sees_frames_in_order_with_two_workers(tmp_path):
    cfg = config(tmp_path, static_frames(40), capture={"lossless": True}, http={"enabled": False},
                 motion={"enabled": True, "max_skip_s": 60})
    d = Daemon(cfg, notifier=Notifier(None))
    assert d.run() == 0
    assert d.state.processed == 1 and d.state.skipped == 39  # exactly as with one worker
    assert d.metrics is not None and d.gate is not None
    assert d.metrics.frames_motion_skipped._value.get() == 39
    assert d.metrics.stage_seconds.labels("motion")._value.get() == pytest.approx(d.gate.stats.check_seconds)


# ---- configuration ----------------------------------------------------------------------------------

def test_workers_default_to_one_and_must_be_positive(tmp_path):
    path = tmp_path / "edge.yaml"
    doc = {"model": {"file": "x.onnx"}, "source": {"type": "file", "path": "v.avi"}}
    path.write_text(yaml.safe_dump(doc))
    assert load_config(path).model.workers == 1
    doc["model"]["workers"] = 0
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CctvkitError, match=r"key 'model\.workers' = 0") as e:
        load_config(path)
    assert "\n" not in str(e.value) and "edge.yaml" in str(e.value)


def test_more_threads_than_cores_is_a_warning_not_an_error(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"model": {"file": "x.onnx", "workers": 4, "threads": 64},
                                    "source": {"type": "file", "path": "v.avi"}}))
    cfg = load_config(path)  # loads
    warning = cfg.model.oversubscription()
    assert warning is not None and "4 x 64 = 256 threads" in warning and "lower model.threads" in warning
    m = ModelConfig(file=Path("x.onnx"), workers=2, threads=1)
    assert m.oversubscription(cores=2) is None
    assert m.oversubscription(cores=1) is not None
    assert ModelConfig(file=Path("x.onnx"), workers=2, threads=2).oversubscription(cores=2) is not None
    assert usable_cores() >= 1 and usable_cores() <= (os.cpu_count() or 1)
