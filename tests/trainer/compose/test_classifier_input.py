"""One classifier preprocessing: the same frame gives byte-identical classifier input whether the compose
stage or `trainer import` writes it as a training image, or the device prepares it for the model
(edge/detect/preprocess.py squash, the one implementation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from compose_scene_factory import BASE, H, W, make_scene

import trainer.compose.compositor as compositor
import trainer.compose.jobs as jobs
import trainer.importer as importer
from edge.detect.preprocess import prepare_classification
from edge.types import ModelSpec
from trainer.compose import ComposeParams, compose_dataset

CLS_SIZE = 32
FRAME = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)  # BGR, every value in use


def device_input(frame: np.ndarray, size: int) -> np.ndarray:
    """What the device feeds a uint8 NHWC classifier, turned back to BGR as training images are written."""
    spec = ModelSpec(task="classify", format="onnx", precision="fp32", path="cls.onnx", imgsz=(size, size),
                     class_names=["no_person", "person"], person_class=1, layout="NHWC", input_dtype="uint8",
                     decoding="probs")
    rgb = prepare_classification(frame, spec)[0]
    return np.ascontiguousarray(rgb[..., ::-1])


def _recorder(writes: list[tuple[Path, np.ndarray]], original: Any, image_first: bool) -> Any:
    """Wraps a JPEG writer: remembers the exact array of every classifier image before it is encoded."""

    def write(*args: Any) -> Any:
        img, path = (args[0], args[-1]) if image_first else (args[1], args[0])
        if "classify" in Path(path).parts:
            writes.append((Path(path), img.copy()))
        return original(*args)

    return write


def test_import_writes_what_the_device_sees(tmp_path, monkeypatch):
    data = tmp_path / "footage"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for i in range(12):
        cv2.imwrite(str(data / "images" / f"frame_{i}.png"), FRAME)  # PNG: the decoded frame is FRAME
        (data / "labels" / f"frame_{i}.txt").write_text("0 0.5 0.5 0.2 0.4\n" if i % 2 else "")
    writes: list[tuple[Path, np.ndarray]] = []
    monkeypatch.setattr(importer, "_write_jpeg", _recorder(writes, importer._write_jpeg, image_first=False))
    importer.build_import(tmp_path / "out", data, None, block_size=2, guard=0, cls_size=CLS_SIZE, progress=False)
    want = device_input(FRAME, CLS_SIZE)
    assert {p.parent.name for p, _ in writes} == {"person", "no_person"}
    assert all(img.tobytes() == want.tobytes() for _, img in writes)


def test_compose_writes_what_the_device_sees(tmp_path, monkeypatch):
    """Every no_person classifier image of the compose stage comes from a negative (a jittered plate); here
    each negative is FRAME itself, so the classifier images must be the device's input for FRAME."""
    negative = compositor._Composer.negative

    def frame_as_negative(self: Any, job: Any) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = negative(self, job)
        return FRAME.copy(), info

    writes: list[tuple[Path, np.ndarray]] = []
    monkeypatch.setattr(compositor._Composer, "negative", frame_as_negative)
    monkeypatch.setattr(jobs, "encode", _recorder(writes, jobs.encode, image_first=True))  # no_person is written there
    scene = make_scene(tmp_path / "scene")
    compose_dataset(scene, tmp_path / "out", ComposeParams(**{**BASE, "cls_size": CLS_SIZE}), progress=False)
    negatives = [img for p, img in writes if p.parent.name == "no_person"]
    want = device_input(FRAME, CLS_SIZE)
    assert negatives and all(img.tobytes() == want.tobytes() for img in negatives)
    assert all(img.shape == want.shape for _, img in writes)  # the person images are squashed the same way
