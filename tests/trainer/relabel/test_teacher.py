"""Teacher mode (trainer/relabel/teacher.py, trainer/scene/teach.py): a detector file labels the real frames.

Real model files throughout: constant-head ONNX detectors (tests/edge/conftest.py's builder) with
Ultralytics metadata, so the teacher's answer is known; the COCO TFLite teacher on real footage when
../shared/data is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic_video as synth
from edge_builders import TEACHER_IMGSZ as IMGSZ
from edge_builders import const_detector, edge_builders

from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, list_images, load_yolo_labels
from trainer.relabel.teacher import Teacher, TeacherFile, teacher_spec
from trainer.scene.params import SceneParams
from trainer.scene.run import build_scene

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data"
# The constant teacher's one box is not where the synthetic walkers are, so the scene's self-check (which
# uses the teacher as its whole-person detector) rightly calls the perspective unconfirmed: go on anyway.
SCENE = {"plate_frames": 30, "calib_frames": 40, "scan_stride": 1, "accept_weak_evidence": True}


def const_classifier(path: Path) -> Path:
    meta = {"names": "{0: 'no_person', 1: 'person'}", "imgsz": "[64, 64]", "task": "classify"}
    return edge_builders().build_const_onnx(path, np.array([[0.2, 0.8]], np.float32), IMGSZ, metadata=meta)


def trainer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CCTVKIT_CACHE": str(cwd / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("case, needles", [
    ("missing", ["nope.onnx", "--teacher"]),
    ("pytorch", ["teacher.pt", ".onnx or .tflite"]),
    ("classifier", ["classifier, not a detector", "detection model"]),
    ("no_person", ["no 'person'", "car, dog", "person"]),
    ("garbage", ["not a readable ONNX model", "teacher.onnx"]),
])
def test_a_teacher_that_cannot_teach_is_one_line_exit_2_and_no_run(tmp_path, case, needles):
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "pytorch":
        model = tmp_path / "teacher.pt"
        model.write_bytes(b"not a model the edge runtime reads")
    elif case == "classifier":
        model = const_classifier(tmp_path / "teacher.onnx")
    elif case == "no_person":
        model = const_detector(tmp_path / "teacher.onnx", names="{0: 'car', 1: 'dog'}")
    else:
        model = tmp_path / "teacher.onnx"
        model.write_bytes(b"\x00garbage" * 100)
    video = synth.write_video(tmp_path / "walkers.avi", n_frames=20)
    for cmd in (["scene", "--run", str(tmp_path / "runs" / "s")], ["demo", "--runs-dir", str(tmp_path / "runs")]):
        proc = trainer(*cmd, "--video", str(video), "--teacher", str(model), "--no-progress", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        for n in needles:
            assert n in lines[0], lines[0]
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_teacher_metadata_without_teacher_is_refused(tmp_path):
    proc = trainer("scene", "--run", str(tmp_path / "r"), "--teacher-metadata", "x.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "--teacher-metadata needs --teacher" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_teacher_spec_reads_class_names_from_the_file(tmp_path):
    spec = teacher_spec(const_detector(tmp_path / "t.onnx", names="{0: 'car', 1: 'person'}"))
    assert spec.person_class == 1 and spec.task == "detect"
    with pytest.raises(CctvkitError, match="only describes .tflite"):
        teacher_spec(tmp_path / "t.onnx", tmp_path / "meta.yaml")


@pytest.fixture(scope="module")
def walkers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_video(tmp_path_factory.mktemp("video") / "walkers.avi")


@pytest.mark.parametrize("fuse", ["teacher", "union"])
def test_scene_labels_come_from_the_teacher(tmp_path, walkers, fuse):
    model = const_detector(tmp_path / "teacher.onnx")
    teacher = Teacher.load(model)
    params = SceneParams(**SCENE, teacher={"fuse": fuse})
    out = tmp_path / "scene"
    summary = build_scene(walkers, out, params, progress=False, teacher=teacher)
    t = summary["teacher"]
    assert summary["evidence"]["detector"] == "teacher teacher.onnx" and summary["evidence"]["low_confidence"]
    assert t["fuse"] == fuse and t["fuse_reason"] == "set in the config"
    assert t["teacher"]["sha256"] == teacher.spec.sha256
    assert t["labels"].startswith("tracked")  # the teacher's box never moves: every frame links
    images = list_images(out / "frames" / "images")
    assert images and t["label_boxes_from_teacher"] == len(images)
    first = synth.frame_at(0, synth.background())
    expected = teacher.find(first).xyxy[0]  # where the constant box lands in a frame of this size
    h, w = first.shape[:2]
    counts = []
    for img in images:
        _, boxes = load_yolo_labels(label_path_for(img), w, h)
        assert np.abs(boxes - expected).min(axis=0).max() < 1.0  # the teacher's box is a label of every frame
        counts.append(len(boxes))
    if fuse == "teacher":
        assert set(counts) == {1}
        assert summary["labels"].startswith("pseudo (teacher teacher.onnx)")
    else:  # the synthetic walkers, which the constant teacher never sees, come from the finder
        assert max(counts) > 1 and t["label_boxes"] > t["label_boxes_from_teacher"]
    hold = list_images(out / "holdout" / "images")
    _, hb = load_yolo_labels(label_path_for(hold[0]), w, h)
    assert np.abs(hb - expected).min(axis=0).max() < 1.0


def test_fuse_auto_keeps_the_finder_when_the_teacher_misses_most_people(tmp_path, walkers):
    weak = Teacher.load(const_detector(tmp_path / "teacher.onnx", score=0.05))  # below conf: finds no one
    summary = build_scene(walkers, tmp_path / "scene", SceneParams(**SCENE), progress=False, teacher=weak)
    t = summary["teacher"]
    assert t["fuse"] == "union" and "does not know this viewpoint" in t["fuse_reason"]
    assert t["label_boxes_from_teacher"] == 0 and t["label_boxes"] > 0


def test_teacher_run_records_the_model_as_an_input(tmp_path, walkers):
    from edge.manifest import Manifest
    from trainer import pipeline
    from trainer.config import PipelineConfig

    model = const_detector(tmp_path / "teacher.onnx")
    m = Manifest.create(tmp_path / "run", "run")
    m.run_dir.mkdir()
    m.save()
    cfg = PipelineConfig.model_validate({"scene": SCENE})
    pipeline.run_scene(m, walkers, cfg, progress=False, teacher=TeacherFile(model))
    doc = json.loads((tmp_path / "run" / "manifest.json").read_text())
    ext = doc["stages"]["scene"]["inputs"]
    assert ext["teacher"]["path"] == str(model.resolve()) and len(ext["teacher"]["sha256"]) == 64


@pytest.mark.real
def test_coco_teacher_on_caviar_tracks_consecutive_frames(tmp_path):
    """The COCO TFLite teacher on 120 consecutive CAVIAR frames (25 fps): dense enough to track."""
    models = SHARED / "models"
    if not (models / "coco-yolo11n-640-int8w.tflite").is_file():
        pytest.skip("needs ../shared/data (models/, caviar-lobby/)")
    frames = sorted((SHARED / "caviar-lobby" / "walk1" / "images").glob("*.jpg"))[:120]
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in frames:
        os.symlink(f, folder / f.name)
    teacher = Teacher.load(models / "coco-yolo11n-640-int8w.tflite", models / "coco-names-metadata.yaml")
    params = SceneParams(plate_frames=30, calib_frames=30, scan_stride=2, train_frames=60, holdout_frames=5,
                         segments=False, orientation="any", teacher={"fuse": "teacher", "conf": 0.1})
    summary = build_scene(folder, tmp_path / "scene", params, progress=False, teacher=teacher)
    t = summary["teacher"]
    assert t["linkable_share"] >= 0.5 and t["labels"].startswith("tracked"), t
    assert t["teacher"]["person_class"] == 0 and t["teacher"]["classes"] == 80


def test_where_the_student_starts(tmp_path, walkers):
    """train.init: auto starts from random weights without a teacher, and says why when the teacher's
    weights cannot be used (an .onnx teacher); 'teacher' makes that an error instead."""
    from edge.manifest import Manifest
    from trainer import pipeline
    from trainer.config import PipelineConfig

    m = Manifest.create(tmp_path / "run", "run")
    m.run_dir.mkdir()
    m.save()
    assert pipeline._student_init(m, "auto", tmp_path / "w.pt") == {"from": "scratch", "reason": "no teacher"}
    with pytest.raises(CctvkitError, match="needs a run made in teacher mode"):
        pipeline._student_init(m, "teacher", tmp_path / "w.pt")
    cfg = PipelineConfig.model_validate({"scene": SCENE})
    pipeline.run_scene(m, walkers, cfg, progress=False, teacher=TeacherFile(const_detector(tmp_path / "t.onnx")))
    init = pipeline._student_init(m, "auto", tmp_path / "w.pt")
    assert init["from"] == "scratch" and "only for .tflite teachers" in init["reason"]
    with pytest.raises(CctvkitError, match="only for .tflite teachers"):
        pipeline._student_init(m, "teacher", tmp_path / "w.pt")
    assert pipeline._student_init(m, "scratch", tmp_path / "w.pt")["from"] == "scratch"
    assert not (tmp_path / "w.pt").exists()
