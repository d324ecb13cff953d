"""Train + export ONNX FP32 and INT8 in a fresh Python that records every network attempt.

Audit hooks cannot be removed, so this runs in a subprocess. HOME points at an empty temp folder, so
any write to ~/.config/Ultralytics (or anywhere in HOME besides our cache) shows up; the cwd is an
empty temp folder too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, socket, sys
attempts = []
EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
          "socket.sendto", "urllib.Request"}
def hook(event, args):
    if event in EVENTS:
        attempts.append([event, repr(args)[:200]])
sys.addaudithook(hook)

from pathlib import Path
data = Path(sys.argv[1])
from toydata import make_toy_classify_dataset, make_toy_detect_dataset
from trainer.yolo.train import train_classifier, train_detector
from export.calibration import select_calibration_images
from export.onnx_export import export_onnx
from export.onnx_int8 import quantize_onnx_int8

det_yaml = make_toy_detect_dataset(data / "detect", n_train=32, n_val=4)
cls_root = make_toy_classify_dataset(data / "classify", n_train=16, n_val=2)
out = data / "out"
det = train_detector(det_yaml, out, epochs=1, imgsz=64, batch=8, workers=0, progress=False)
cls = train_classifier(cls_root, out, epochs=1, imgsz=32, batch=8, workers=0, progress=False)
for res, task, imgsz, calib in ((det, "detect", 64, data / "detect" / "images" / "train"),
                                (cls, "classify", 32, cls_root / "train")):
    fp32 = export_onnx(res.weights, out / f"{task}-fp32.onnx", task=task, imgsz=imgsz)
    quantize_onnx_int8(out / f"{task}-fp32.onnx", out / f"{task}-int8.onnx", fp32,
                       select_calibration_images(calib, n=32), progress=False)
work = list(attempts)
try:  # canary: proves the hook sees a lookup (localhost needs no network)
    socket.getaddrinfo("localhost", 80)
except OSError:
    pass
print("RESULT " + json.dumps({"attempts": work, "canary": len(attempts) > len(work),
                              "outputs": sorted(p.name for p in out.glob("*.onnx"))}))
"""


@pytest.mark.slow
def test_train_and_export_make_no_network_attempts(tmp_path: Path) -> None:
    home, cwd, data = tmp_path / "home", tmp_path / "cwd", tmp_path / "data"
    for d in (home, cwd, data):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "CCTVKIT_", "XDG_"))}
    # tests/ for the toy data set (tests/toydata.py), after the checkout so the real packages win
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               MPLCONFIGDIR=str(tmp_path / "mpl"))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["canary"], "the audit hook did not see a lookup: the check itself is broken"
    assert result["attempts"] == []
    assert result["outputs"] == [
        "classify-fp32.onnx",
        "classify-int8.onnx",
        "detect-fp32.onnx",
        "detect-int8.onnx",
    ]
    assert list(cwd.iterdir()) == []
    assert not (home / ".config" / "Ultralytics").exists()
    # Ultralytics' config lives in the default cctvkit cache of that HOME, with the offline fonts
    user_dir = home / ".cache" / "cctvkit" / "ultralytics" / "Ultralytics"
    assert (user_dir / "Arial.ttf").is_file() and (user_dir / "settings.json").is_file()
