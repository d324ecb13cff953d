"""Helpers for the daemon tests (fixtures are in conftest.py): a tiny ONNX "person detector" whose answer depends on the picture,
a run manifest for it, small videos, a real NOTIFY_SOCKET and a helper to run `edge run` as a process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from edge.manifest import Manifest
from edge.types import ModelSpec

ROOT = Path(__file__).resolve().parents[3]
IMGSZ = (64, 64)


def build_brightness_detector(path: Path, crash_above: float | None = None) -> Path:
    """A 1-class YOLO-head ONNX model with two anchors: anchor 0 is a person box in the middle of the input
    whose score is 2 * mean(image) - 0.9 (a bright frame holds a "person", a dark one none); anchor 1
    never scores. Real ONNX Runtime, real letterbox and decode: only the network is trivial.

    crash_above: the model fails inside ONNX Runtime (a Gather index out of bounds) on inputs whose mean
    (0-1) is above this: a runtime error on some frames only, after a clean load and warm-up."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = IMGSZ
    base = np.zeros((1, 5, 2), np.float32)
    base[0, :4, 0] = [w / 2, h / 2, w / 4, h / 2]  # cx, cy, bw, bh in input pixels
    base[0, 4, 0] = -0.9
    base[0, :4, 1] = [10, 10, 4, 4]
    base[0, 4, 1] = -5.0
    gain = np.zeros((1, 5, 2), np.float32)
    gain[0, 4, 0] = 2.0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "G"], ["g"]),
    ]
    inits = [numpy_helper.from_array(gain, "G")]
    if crash_above is None:
        inits.append(numpy_helper.from_array(base, "B"))
    else:  # B = table[int(m > crash_above)] from a one-row table: index 1 is out of bounds
        nodes += [
            helper.make_node("Greater", ["m", "T"], ["over"]),
            helper.make_node("Cast", ["over"], ["idx"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "idx"], ["B"], axis=0),
        ]
        inits += [numpy_helper.from_array(base[None], "table"),
                  numpy_helper.from_array(np.array(crash_above, np.float32), "T")]
    nodes.append(helper.make_node("Add", ["g", "B"], ["output0"]))
    graph = helper.make_graph(
        nodes,
        "brightness_person",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def make_run(run_dir: Path, name: str = "person", crash_above: float | None = None) -> Path:
    """A run directory with manifest.json listing the brightness detector as model `name`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build_brightness_detector(run_dir / "person.onnx", crash_above)
    m = Manifest.create(run_dir, "daemon-test")
    m.add_model(name, ModelSpec(task="detect", format="onnx", precision="fp32", path=model.name, imgsz=IMGSZ,
                                class_names=["person"]))
    m.save()
    return run_dir


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened(), "OpenCV cannot write MJPG .avi here"
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def textured(seed: int = 0, size: tuple[int, int] = (120, 160), level: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.normal(0, 1, (size[0] // 8, size[1] // 8)).astype(np.float32), size[::-1])
    img = np.clip(level + 25 * noise, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def static_frames(n: int = 40, seed: int = 0) -> list[np.ndarray]:
    """The same scene n times with a little sensor noise (what a camera on an empty yard delivers)."""
    bg = textured(seed)
    rng = np.random.default_rng(seed + 1)
    return [np.clip(bg.astype(np.int16) + rng.integers(-3, 4, bg.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def moving_frames(n: int = 40, seed: int = 0) -> list[np.ndarray]:
    """A dark block crossing the scene at 4 px per frame."""
    bg = textured(seed)
    out = []
    for t in range(n):
        f = bg.copy()
        x = 4 * t
        cv2.rectangle(f, (x, 40), (x + 24, 100), (20, 20, 20), -1)
        out.append(f)
    return out


def bright_then_dark(n_bright: int = 15, n_dark: int = 15) -> list[np.ndarray]:
    """Frames the brightness detector sees a person in, then frames it sees nobody in."""
    return [textured(i, level=235) for i in range(n_bright)] + [textured(i, level=10) for i in range(n_dark)]


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float, since: int = 0) -> str | None:
        """The first message holding `field` (e.g. READY=1) among self.messages[since:] and those arriving
        within `timeout` seconds; None if none came."""
        deadline = time.monotonic() + timeout
        for m in self.messages[since:]:
            if field in m.split("\n"):
                return m
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(min(left, 0.5))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if field in msg.split("\n"):
                return msg
        return None

    def drain(self) -> list[str]:
        """Messages waiting in the socket now (all of them are also kept in self.messages)."""
        start = len(self.messages)
        self.sock.settimeout(0.0)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (BlockingIOError, TimeoutError):
            pass
        return self.messages[start:]

    def close(self) -> None:
        self.sock.close()


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def base_config(run_dir: Path, video: Path, **sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": {"manifest": str(run_dir), "name": "person", "threads": 1},
        "source": {"type": "file", "path": str(video)},
        "http": {"port": 0},
        "system": {"thermal_zone": "/nonexistent/temp", "cpufreq": None, "vcgencmd": "no-such-vcgencmd"},
    }
    for k, v in sections.items():
        doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) else v
    return doc


class DaemonProcess:
    """`edge run --config` as a real child process; its log goes to a file (a pipe nobody reads could fill
    up and block the daemon)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None):
        self.log_path = config.with_suffix(".log")
        # A test runner started by systemd must not hand its own watchdog settings to the child.
        inherited = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        full = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                                         cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, text=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit). Kills it past `timeout`."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        return code, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def stream_config(tmp_path: Path, url: str, **sections: Any) -> Path:
    """edge.yaml for a stream camera at `url` (quick reconnects, /healthz failing after 0.5 s without a
    frame), in tmp_path with the brightness detector's run."""
    run = make_run(tmp_path / "run")
    doc = base_config(run, tmp_path / "unused.avi",
                      source={"type": "stream", "url": url, "open_timeout_s": 2, "read_timeout_s": 1},
                      capture={"backoff_initial_s": 0.1, "backoff_max_s": 0.3},
                      http={"healthz_max_age_s": 0.5}, **sections)
    del doc["source"]["path"]  # the file source's key, merged in by base_config
    return write_config(tmp_path / "edge.yaml", doc)


def start_ready(cfg: Path, notify: NotifyListener, env: dict[str, str] | None = None) -> tuple[DaemonProcess, int]:
    """`edge run` started and READY=1 received; (the process, its HTTP port)."""
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path), **(env or {})})
    ready = notify.wait_for("READY=1", timeout=30)
    if ready is None:
        d.kill()
        raise AssertionError(d.log)
    m = re.search(r"http port (\d+)", ready)
    assert m, ready
    return d, int(m.group(1))


def failed_start(cfg: Path, notify: NotifyListener) -> tuple[int | None, list[str], str]:
    """`edge run` that is expected to stop at start-up: (exit code, its `error:` lines, the whole log)."""
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        code = d.wait(30)
    finally:
        d.kill()
    return code, [line for line in d.log.splitlines() if line.startswith("error:")], d.log


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(port: int, name: str) -> float | None:
    """One unlabelled sample of the daemon's /metrics (counters with _total), None if absent."""
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    m = re.search(rf"^{re.escape(name)}(?:_total)? (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def wait_for(cond: Callable[[], object], timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())


def fill(directory: Path) -> Path:
    """Fill the file system with one ballast file; returns it (delete it to free the space)."""
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as f, contextlib.suppress(OSError):
        for _ in range(1000):
            f.write(b"\0" * 4096)
    return ballast


FAKE_VCGENCMD = """#!/bin/sh
case "$1" in
  get_throttled) echo "throttled=0x20002" ;;
  measure_clock) echo "frequency(48)=1800000000" ;;
esac
"""


def fake_pi(tmp_path: Path) -> tuple[Path, Path]:
    """A Pi's thermal zone (47.5 C) and a `vcgencmd` (throttled=0x20002, ARM at 1.8 GHz) under tmp_path:
    (the zone file, the folder to put first on the daemon's PATH)."""
    zone = tmp_path / "sys/class/thermal/thermal_zone0/temp"
    zone.parent.mkdir(parents=True)
    zone.write_text("47500\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vcgencmd").write_text(FAKE_VCGENCMD)
    (bindir / "vcgencmd").chmod(0o755)
    return zone, bindir


def scrape(port: int) -> dict:
    code, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    return {f.name: f for f in text_string_to_metric_families(text)}
