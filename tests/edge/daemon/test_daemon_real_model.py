"""The daemon with a real COCO YOLOv8n (full-integer TFLite, LiteRT) on real vtest frames: the bare-file
model path with Ultralytics' metadata.yaml as its spec, and sensible person boxes in the records, with one
worker and with two (two LiteRT interpreters on two threads)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from daemon_helpers import write_config

from edge.config import load_config
from edge.daemon import Daemon
from edge.sdnotify import Notifier

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.mark.real
@pytest.mark.parametrize("workers", [1, 2])
def test_coco_model_on_vtest_frames(tmp_path, workers):
    model = SHARED / "models" / "coco-yolov8n-640-full-int8.tflite"
    meta = SHARED / "models" / "coco-names-metadata.yaml"
    video = SHARED / "vtest" / "vtest.avi"
    if not (model.is_file() and meta.is_file() and video.is_file()):
        pytest.skip("needs ../shared/data")
    frames = tmp_path / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(60):
        ok, img = cap.read()
        assert ok
        if i % 20 == 0:  # 3 frames 2 s apart
            cv2.imwrite(str(frames / f"{i:04d}.jpg"), img)
    cap.release()
    cfg_path = write_config(tmp_path / "edge.yaml", {
        "model": {"file": str(model), "spec": str(meta), "threads": 2 if workers == 1 else 1, "workers": workers},
        "source": {"type": "images", "path": str(frames)},
        "capture": {"lossless": True},
        "records": {"jsonl": "ev.jsonl"},
        "http": {"enabled": False},
    })
    d = Daemon(load_config(cfg_path), notifier=Notifier(None))
    assert d.run() == 0
    assert d.state.processed == 3 and len(d.models) == workers
    dets = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    dets = [e for e in dets if e["kind"] == "detection"]
    assert sorted(e["frame"] for e in dets) == [0, 1, 2]  # with 2 workers they may come out of order
    for e in dets:
        # The PETS 2009 campus scene has several pedestrians in every frame; boxes are upright people.
        assert e["count"] >= 3, e
        for x1, y1, x2, y2 in e["boxes"]:
            assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576
            assert (y2 - y1) > (x2 - x1) * 0.8
