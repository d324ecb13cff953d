"""A detector trained on compose.label_classes: split labels (person, person_synthetic) is scored on real
one-class labels by the one evaluation core: its edge decoding reports both classes as the person."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "compose"))

from compose_scene_factory import make_scene  # noqa: E402
from persons_factory import make_persons  # noqa: E402

from edge.detect.decode import decode_yolov8  # noqa: E402
from edge.detect.preprocess import prepare_detection  # noqa: E402
from edge.detector import Detector  # noqa: E402
from edge.eval.accuracy import model_accuracy  # noqa: E402
from edge.eval.labelled import load_yolo_folder  # noqa: E402
from edge.types import ModelSpec  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from trainer.compose import ComposeParams, compose_dataset  # noqa: E402
from trainer.yolo.train import train_detector  # noqa: E402


def test_split_label_detector_decodes_both_classes_as_person(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "scene")
    persons = make_persons(scene, tmp_path / "persons")
    out = tmp_path / "composed"
    out.mkdir()
    params = ComposeParams(n_images=16, seed=2, cls_size=32, label_classes="split",
                           persons={"real": 0.5, "generated": 0.5})
    compose_dataset(scene, out, params, progress=False, persons_dir=persons)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        det = train_detector(out / "detect" / "data.yaml", tmp_path / "models", epochs=1, imgsz=64, batch=8,
                             workers=0, progress=False)
    finally:
        os.chdir(old)
    spec = export_onnx(det.weights, tmp_path / "detector.onnx", task="detect", imgsz=64)
    assert spec.class_names == ["person", "person_synthetic"] and spec.person_ids == [0, 1]

    model = Detector(spec, tmp_path / "detector.onnx", threads=1, conf=0.001, classes=[spec.person_class])
    frames = load_yolo_folder(scene / "frames")  # real, one-class labels
    raw = model.backend.run(prepare_detection(frames.frames[0], spec)[0])
    dets = model.detect(frames.frames[0])
    assert len(dets) and set(dets.class_ids.tolist()) == {0}
    # The same as a one-class head whose person score is the better of the two: one person to NMS.
    (y,) = [o for o in raw if o.ndim == 3]
    pooled = np.concatenate([y[:, :4], y[:, 4:6].max(axis=1, keepdims=True)], axis=1)
    one = ModelSpec(**{**spec.__dict__, "class_names": ["person"], "person_classes": []})
    ref = decode_yolov8([pooled], one, prepare_detection(frames.frames[0], spec)[1], conf=0.001)
    assert np.allclose(np.sort(dets.scores), np.sort(ref.scores)) and len(dets) == len(ref)
    scores = model_accuracy(model, frames, conf=0.25)
    assert scores["eval_frames"] > 0  # the one evaluation core scores the two-class model on real labels
