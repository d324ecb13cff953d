"""The student starts from the teacher's weights (trainer/relabel/warmstart.py): a COCO YOLO11n .tflite
becomes a PyTorch YOLO11n that answers like the teacher, before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import CctvkitError
from edge.eval.labelled import read_image
from trainer.relabel.teacher import Teacher, teacher_spec
from trainer.relabel.warmstart import student_from_teacher

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
MODELS = SHARED / "models"
META = MODELS / "coco-names-metadata.yaml"

pytestmark = pytest.mark.real


def _need(name: str) -> Path:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"needs ../shared/data/models/{name}")
    return path


def test_yolo11n_teacher_weights_make_a_student_that_answers_like_the_teacher(tmp_path):
    tflite = _need("coco-yolo11n-640-int8w.tflite")
    spec = teacher_spec(tflite, META)
    info = student_from_teacher(tflite, spec.person_class, len(spec.class_names), spec.imgsz, tmp_path / "s.pt")
    assert info["convolutions"] == 88 and info["probe_correlation"] >= 0.98
    # Batch norms get statistics back (train mode starts where eval is) without changing eval mode.
    assert info["batch_norms_restored"] == 81 and info["eval_unchanged_max_abs"] < 1e-4

    import torch

    from edge.detect.preprocess import prepare_detection
    from export.offline import load_model

    # The same 640 x 640 tensor into both: the teacher through the edge runtime's TFLite backend, the
    # student through PyTorch; their person scores over all 8400 anchors must agree.
    teacher = Teacher.load(tflite, META)
    x, _ = prepare_detection(read_image(SHARED / "images" / "bus.jpg"), spec)
    theirs = teacher.detector.backend.run(x)[0][0, 4]
    net = load_model("detect", tmp_path / "s.pt").model.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    mine = (out[0] if isinstance(out, tuple | list) else out).numpy()[0, 4]
    assert np.corrcoef(mine, theirs)[0, 1] > 0.995
    top = np.argsort(theirs)[-4:]  # the four people on bus.jpg (data README)
    assert (theirs[top] > 0.25).all()
    np.testing.assert_allclose(mine[top], theirs[top], atol=0.03)  # int8 weights, float activations


def test_a_teacher_of_another_architecture_is_refused(tmp_path):
    tflite = _need("coco-yolov8n-640-int8w.tflite")
    spec = teacher_spec(tflite, META)
    with pytest.raises(CctvkitError, match="not the same architecture|reproduces"):
        student_from_teacher(tflite, 0, len(spec.class_names), spec.imgsz, tmp_path / "s.pt")
    assert not (tmp_path / "s.pt").exists()


def test_a_yolov8n_teacher_starts_a_yolov8n_student(tmp_path):
    tflite = _need("coco-yolov8n-640-int8w.tflite")
    spec = teacher_spec(tflite, META)
    info = student_from_teacher(tflite, 0, len(spec.class_names), spec.imgsz, tmp_path / "s.pt",
                                arch_yaml="yolov8n.yaml")
    assert info["probe_correlation"] >= 0.98 and info["arch"] == "yolov8n.yaml"
