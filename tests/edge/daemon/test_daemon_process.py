"""`edge run` as a real process: systemd notify protocol, /metrics, /healthz, SIGTERM, records, and the
start-up failures that must happen before READY=1."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from daemon_helpers import (
    DaemonProcess,
    NotifyListener,
    base_config,
    bright_then_dark,
    failed_start,
    fake_pi,
    http_get,
    make_run,
    scrape,
    write_config,
    write_video,
)

from edge.atomic import sha256_file


def value(fams: dict, name: str, **labels: str) -> float:
    """A sample by its exposed name (counters with or without _total, histogram _count/_bucket)."""
    for fam in fams.values():
        for s in fam.samples:
            if s.name in (name, name + "_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(name)


def test_run_notify_metrics_health_sigterm_records(tmp_path, notify: NotifyListener):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(8, 8))
    zone, bindir = fake_pi(tmp_path)
    doc = base_config(run, video,
                      source={"loop": True, "realtime": True, "fps": 40},
                      records={"jsonl": "rec/ev.jsonl", "sqlite": "rec/ev.db", "leave_after_s": 0.05,
                               "flush_every_s": 0.2},
                      system={"thermal_zone": str(zone), "vcgencmd": "vcgencmd"})
    cfg = write_config(tmp_path / "edge.yaml", doc)
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "600000",
                                "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    try:
        ready = notify.wait_for("READY=1", timeout=30)
        assert ready is not None, d.log
        m = re.search(r"http port (\d+)", ready)
        assert m, ready
        port = int(m.group(1))
        # Warm-up happened before READY: the log says so first.
        assert d.log.index("warmed up") < d.log.index("ready:")
        assert notify.wait_for("WATCHDOG=1", timeout=5) is not None
        # Frames flow: bounded wait for processed frames and one full bright -> dark cycle of the video.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fams = scrape(port)
            if value(fams, "cctvkit_frames_processed") >= 20:
                break
            time.sleep(0.2)
        assert value(fams, "cctvkit_frames_processed") >= 20
        assert value(fams, "cctvkit_frames_captured") >= value(fams, "cctvkit_frames_processed")
        assert value(fams, "cctvkit_inference_latency_seconds_count") >= 20
        assert value(fams, "cctvkit_inference_latency_seconds_bucket", le="+Inf") >= 20
        assert value(fams, "cctvkit_fps") > 5
        assert value(fams, "cctvkit_camera_connected") == 1
        assert value(fams, "cctvkit_ready") == 1
        # The fake Pi: thermal zone file and vcgencmd on PATH.
        assert value(fams, "cctvkit_cpu_temperature_celsius") == 47.5
        assert value(fams, "cctvkit_arm_frequency_hertz") == 1.8e9
        assert value(fams, "cctvkit_throttle", flag="freq_capped", when="now") == 1
        assert value(fams, "cctvkit_throttle", flag="freq_capped", when="since_boot") == 1
        assert value(fams, "cctvkit_throttle", flag="under_voltage", when="now") == 0
        assert value(fams, "cctvkit_resident_memory_bytes") > 0
        code, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok", body
        # Which model it runs, by the sha256 it was checked against: what a deploy waits for.
        assert json.loads(body)["model"] == {"name": "person", "sha256": sha256_file(run / "person.onnx"),
                                             "manifest": str((run / "manifest.json").resolve())}, body
        notify.drain()
        n_pings = sum(m == "WATCHDOG=1" for m in notify.messages)
        assert n_pings >= 2  # every 0.2 s (WATCHDOG_USEC / 3) from the loop

        code, seconds = d.terminate(timeout=5)
        assert code == 0, d.log
        assert seconds < 2.0
    finally:
        d.kill()
    notify.drain()
    assert any(m.startswith("STOPPING=1") for m in notify.messages)
    # Records were flushed: JSONL and SQLite hold the same events, including presence changes.
    lines = [json.loads(x) for x in (tmp_path / "rec/ev.jsonl").read_text().splitlines()]
    kinds = [(e["kind"], e.get("state")) for e in lines]
    assert ("presence", "appeared") in kinds and ("presence", "left") in kinds
    dets = [e for e in lines if e["kind"] == "detection"]
    assert dets and all(e["count"] == 1 and len(e["boxes"]) == 1 and len(e["scores"]) == 1 for e in dets)
    assert all(0 < e["latency_ms"] < 1000 for e in dets)
    with contextlib.closing(sqlite3.connect(tmp_path / "rec/ev.db")) as db:
        rows = db.execute("SELECT kind, frame FROM events ORDER BY id").fetchall()
    assert rows == [(e["kind"], e["frame"]) for e in lines]
    assert "stopped in" in d.log


def test_sigint_stops_it_cleanly_too(tmp_path, notify):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(5, 5))
    cfg = write_config(tmp_path / "edge.yaml", base_config(run, video, source={"loop": True, "realtime": True},
                                                           records={"jsonl": "ev.jsonl"}))
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        assert notify.wait_for("READY=1", timeout=30) is not None, d.log
        time.sleep(0.3)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        assert d.wait(5) == 0, d.log
        assert time.monotonic() - t0 < 2.0
    finally:
        d.kill()
    assert "received SIGINT" in d.log and "Traceback" not in d.log
    assert (tmp_path / "ev.jsonl").read_text().count("\n") >= 1


def test_non_looping_file_ends_the_daemon_cleanly(tmp_path, notify):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(5, 5))
    cfg = write_config(tmp_path / "edge.yaml",
                       base_config(run, video, capture={"lossless": True}, records={"jsonl": "ev.jsonl"}))
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path)})
    assert d.wait(30) == 0, d.log
    assert notify.wait_for("READY=1", timeout=1) is not None
    assert "10 frames processed" in d.log  # lossless: every frame of the file


def _expect_startup_failure(cfg: Path, notify: NotifyListener, pattern: str) -> str:
    code, errors, log = failed_start(cfg, notify)
    assert code != 0
    assert len(errors) == 1, log
    assert re.search(pattern, errors[0]), errors[0]
    assert notify.wait_for("READY=1", timeout=0.3) is None
    return errors[0]


@pytest.mark.parametrize("fault", ["missing", "corrupt", "sha_mismatch", "corrupt_bare_file"])
def test_model_faults_stop_before_ready(tmp_path, notify, fault):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(2, 2))
    model = run / "person.onnx"
    doc = base_config(run, video)
    if fault == "missing":
        model.unlink()
        pattern = r"person\.onnx: file listed in the manifest is missing"
    elif fault == "corrupt":
        model.write_bytes(model.read_bytes()[:50])  # truncated copy
        pattern = r"person\.onnx: sha256 does not match the manifest"
    elif fault == "sha_mismatch":
        doc["model"] = {"file": str(model), "sha256": "0" * 64}
        pattern = r"person\.onnx: sha256 does not match model\.sha256"
    else:  # a bare file without a pinned sha256: the runtime itself must refuse it, still before READY
        garbage = tmp_path / "garbage.onnx"
        garbage.write_bytes(b"not a model at all" * 10)
        doc["model"] = {"file": str(garbage)}
        pattern = r"garbage\.onnx: not a readable ONNX model"
    _expect_startup_failure(write_config(tmp_path / "edge.yaml", doc), notify, pattern)


def test_bare_model_file_with_correct_sha_runs(tmp_path, notify):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(3, 0))
    model = run / "person.onnx"
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: detect\nformat: onnx\nprecision: fp32\nimgsz: [64, 64]\nclass_names: [person]\n")
    doc = base_config(run, video, capture={"lossless": True})
    doc["model"] = {"file": str(model), "spec": str(spec), "sha256": sha256_file(model), "threads": 1}
    d = DaemonProcess(write_config(tmp_path / "edge.yaml", doc), env={"NOTIFY_SOCKET": str(notify.path)})
    assert d.wait(30) == 0, d.log
    assert "3 frames processed" in d.log


@pytest.mark.parametrize("section,bad,pattern", [
    ("motion", {"treshold": 3}, r"unknown key 'motion\.treshold' -- remove it or use one of: .*threshold"),
    ("records", {"rotate_mb": -1}, r"key 'records\.rotate_mb' = -1"),
    ("source", {"pathh": "x"}, r"unknown key 'pathh' for a file source -- use one of: path"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, notify, section, bad, pattern):
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(2, 2))
    cfg = write_config(tmp_path / "edge.yaml", base_config(run, video, **{section: bad}))
    line = _expect_startup_failure(cfg, notify, pattern)
    assert "edge.yaml" in line


def test_sighup_flushes_records_and_exits_cleanly(tmp_path, notify):
    """Issue 14 row 10: SIGHUP used to kill the daemon (exit 129) with its SQLite batch unwritten. It now
    stops like SIGTERM (systemd's Restart= brings it back, with an edited config)."""
    run = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(5, 5))
    doc = base_config(run, video, source={"loop": True, "realtime": True, "fps": 40},
                      records={"jsonl": "ev.jsonl", "sqlite": "ev.db", "leave_after_s": 0.05,
                               "flush_every_s": 30.0})  # nothing committed before the signal but by the flush
    d = DaemonProcess(write_config(tmp_path / "edge.yaml", doc), env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        assert notify.wait_for("READY=1", timeout=30) is not None, d.log
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len((tmp_path / "ev.jsonl").read_bytes().splitlines()) < 5:
            time.sleep(0.1)
        d.proc.send_signal(signal.SIGHUP)
        assert d.wait(5) == 0, d.log
    finally:
        d.kill()
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert len(lines) >= 5
    with contextlib.closing(sqlite3.connect(tmp_path / "ev.db")) as db:
        rows = db.execute("SELECT kind, frame FROM events ORDER BY id").fetchall()
    assert rows == [(e["kind"], e["frame"]) for e in lines]
    assert "received SIGHUP" in d.log
