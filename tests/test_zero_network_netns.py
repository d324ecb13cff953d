"""Zero network, proven by the kernel: the product's commands run in a network namespace of their own.

The audit-hook tests (tests/trainer/yolo/test_zero_network.py, tests/export/test_litert_export.py) see what
Python asks for; they cannot see a socket opened by native code (ONNX Runtime, ncnn, LiteRT, FFmpeg). Here
each command runs under `unshare -n`: a fresh namespace whose only interface is a loopback that is DOWN, so
any connection anywhere -- the internet, the LAN, even this machine's 127.0.0.1 -- fails. A command that
needed the network would fail or hang (each has a timeout). Commands, in the order a user runs them:
`trainer demo --video` (scene, compose, train, export ONNX, bench), `trainer export` of every other format
(ncnn, LiteRT), `bench run` of every model, `edge run` (its HTTP server binds 127.0.0.1, which needs no
link).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic_video
import yaml

from edge.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = synthetic_video.tiny_demo_config()


def _netns_available() -> str | None:
    """None when `unshare -n` works here, else why not (it needs root or CAP_SYS_ADMIN)."""
    try:
        proc = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return "unshare (util-linux) is not installed"
    if proc.returncode != 0:
        return f"no network namespace here (unshare -n needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}"
    return None


def in_netns(module: str, *args: str, cwd: Path, home: Path, timeout: float = 1500) -> subprocess.CompletedProcess:
    """`python -m module args` in a network namespace with nothing in it; asserts exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "XDG_", "NOTIFY_", "WATCHDOG_"))}
    # HOME empty: nothing cached by an earlier run (Ultralytics settings, fonts) can stand in for a download.
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), CCTVKIT_CACHE=str(cwd / "cache"),
               MPLCONFIGDIR=str(home / "mpl"))
    cmd = ["unshare", "-n", "--", sys.executable, "-m", module, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{module} {args} failed with no network:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def netns() -> None:
    why = _netns_available()
    if why:
        pytest.skip(why)


def test_the_namespace_has_no_network_at_all(netns: None, tmp_path: Path) -> None:
    """The check's own canary: from inside, a listener on this machine's loopback cannot be reached."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        probe = (f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                 " print('CONNECTED')\nexcept OSError as e:\n print('FAILED', e.errno)")
        inside = subprocess.run(["unshare", "-n", sys.executable, "-c", probe], capture_output=True, text=True,
                                timeout=30)
        outside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert outside.stdout.startswith("CONNECTED"), outside.stderr  # the probe can succeed ...
    assert inside.stdout.startswith("FAILED"), inside.stdout + inside.stderr  # ... but not in the namespace


def test_trainer_export_bench_and_edge_run_with_no_network(netns: None, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    video = synthetic_video.write_video(tmp_path / "walkers.avi", n_frames=80)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    in_netns("trainer.cli", "demo", "--video", str(video), "--name", "synth", "--runs-dir", "runs",
             "--config", str(cfg), "--no-progress", cwd=tmp_path, home=home)
    run = tmp_path / "runs" / "synth"

    in_netns("trainer.cli", "export", "--run", str(run), "--config", str(cfg), "--formats", "ncnn,litert",
             "--no-progress", cwd=tmp_path, home=home)
    models = Manifest.load(run).models()
    backends = {spec.format for spec in models.values()}
    assert {"onnx", "ncnn", "tflite"} <= backends, sorted(models)

    bench_out = tmp_path / "bench-out"
    in_netns("bench.cli", "run", "--models", str(run / "manifest.json"), "--max-frames", "4", "--no-progress",
             "--out", str(bench_out), cwd=tmp_path, home=home)
    cells = json.loads((bench_out / "results.json").read_text())["cells"]
    assert {c["model"] for c in cells} == set(models)  # every model, on each backend that reads it
    assert all(c["status"] == "ok" for c in cells), [(c["model"], c.get("reason")) for c in cells]

    edge_cfg = tmp_path / "edge.yaml"
    edge_cfg.write_text(yaml.safe_dump({
        "model": {"manifest": str(run), "name": "detector-onnx-int8", "threads": 1},
        "source": {"type": "file", "path": str(video)},
        "capture": {"lossless": True},
        "records": {"jsonl": str(tmp_path / "rec" / "events.jsonl")},
        "http": {"port": 0},
        "watchdog": {"enabled": False},
        "system": {"thermal_zone": "/nonexistent/temp", "cpufreq": None, "vcgencmd": "no-such-vcgencmd"},
    }))
    proc = in_netns("edge.cli", "run", "--config", str(edge_cfg), cwd=tmp_path, home=home, timeout=300)
    # lossless: every one of the video's 80 frames went through the model, and the records had no errors
    assert "80 frames processed" in proc.stderr, proc.stderr[-2000:]
    assert "0 record errors" in proc.stderr, proc.stderr[-2000:]
