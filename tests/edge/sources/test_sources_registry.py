"""The SOURCES registry, config parsing, and the hardware sources (skipped without the hardware)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import CctvkitError
from edge.sources import (
    SOURCES,
    Capture,
    FileConfig,
    Picamera2Config,
    V4L2Config,
    available_sources,
    get_source,
    make_source,
    parse_source_config,
)
from edge.sources.picamera2 import Picamera2Source, fit_size
from edge.sources.v4l2 import V4L2Source, video_devices

ROOT = Path(__file__).resolve().parents[3]


def test_registry_names_and_availability():
    assert set(SOURCES) == {"picamera2", "v4l2", "stream", "file", "images"}
    avail = available_sources()
    assert avail["file"] is None and avail["images"] is None and avail["stream"] is None
    assert (avail["v4l2"] is None) == bool(video_devices())
    if importlib.util.find_spec("picamera2") is None:
        assert avail["picamera2"] == (
            "not installed (apt install python3-picamera2 and a venv with --system-site-packages)"
        )
    for name, cls in SOURCES.items():
        assert cls.name == name
        assert cls.Config.model_fields["type"].default == name


def test_unknown_type_lists_valid_names_and_why_some_are_unavailable():
    with pytest.raises(CctvkitError) as e:
        make_source({"type": "webcam", "device": 0})
    msg = str(e.value)
    assert "unknown source type 'webcam'" in msg and "\n" not in msg
    for name in SOURCES:
        assert name in msg
    for name, why in available_sources().items():
        if why:
            assert f"{name}: {why}" in msg
    with pytest.raises(CctvkitError, match="unknown source type"):
        get_source("gopro")
    with pytest.raises(CctvkitError, match="unknown source type None"):
        parse_source_config({"path": "x.avi"})


def test_unknown_keys_and_bad_values_are_one_line_errors(tmp_path: Path):
    with pytest.raises(CctvkitError, match="unknown key 'looping' for a file source") as e:
        parse_source_config({"type": "file", "path": "a.avi", "looping": True})
    assert "loop" in str(e.value) and "realtime" in str(e.value)
    with pytest.raises(CctvkitError, match="'fps'"):
        parse_source_config({"type": "file", "path": "a.avi", "fps": -3})
    with pytest.raises(CctvkitError, match="realtime: true"):
        parse_source_config({"type": "file", "path": "a.avi", "fps": 5})
    with pytest.raises(CctvkitError, match="fourcc"):
        parse_source_config({"type": "v4l2", "fourcc": "MJPEG"})
    with pytest.raises(CctvkitError, match="both width and height"):
        parse_source_config({"type": "picamera2", "width": 640})
    cfg = parse_source_config({"type": "v4l2", "device": "2", "width": 640, "height": 480, "fps": 30})
    assert isinstance(cfg, V4L2Config) and cfg.device == 2 and cfg.fourcc == "MJPG"
    assert isinstance(parse_source_config({"type": "file", "path": "a.avi"}), FileConfig)


def test_unavailable_source_is_refused_with_the_reason():
    for name, why in available_sources().items():
        if why:
            with pytest.raises(CctvkitError, match=f"source '{name}' is unavailable here"):
                get_source(name)


def test_v4l2_camera():
    if not video_devices():
        pytest.skip("needs a V4L2 camera (/dev/video*)")
    source = make_source(V4L2Config(device=video_devices()[0], width=640, height=480))
    assert isinstance(source, V4L2Source)
    with Capture(source) as cap:
        frame = cap.latest(timeout=5.0)
    assert frame is not None and frame.image.ndim == 3
    assert source.negotiated is not None


def test_v4l2_missing_device_names_the_ones_present():
    if not video_devices():
        with pytest.raises(CctvkitError, match="unavailable here: no camera"):
            make_source({"type": "v4l2", "device": 0})
    else:
        with pytest.raises(CctvkitError, match="camera device not found"):
            make_source({"type": "v4l2", "device": "/dev/video987"})


def test_picamera2_camera():
    if importlib.util.find_spec("picamera2") is None:
        pytest.skip("needs a Raspberry Pi camera (picamera2)")
    source = make_source(Picamera2Config(), model_imgsz=(320, 320))
    assert isinstance(source, Picamera2Source)
    with Capture(source) as cap:
        frame = cap.latest(timeout=10.0)
    assert frame is not None and max(frame.image.shape[:2]) <= 320 + 32


def test_picamera2_frame_size_keeps_the_sensor_aspect():
    assert fit_size((4608, 2592), 640) == (640, 360)
    assert fit_size((2028, 1520), 320) == (320, 240)
    assert fit_size((1520, 2028), 640) == (480, 640)


def test_picamera2_module_is_only_imported_when_used():
    code = "import sys, edge.sources; print('picamera2' in sys.modules, 'libcamera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
