"""The generator and persons stages of a run: trained on a toy scene's cutouts, recorded in the manifest,
gated, and bad input refused with one line and exit 2 (nothing written, the manifest untouched)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compose"))
from compose_scene_factory import make_scene  # noqa: E402

from edge.manifest import Manifest  # noqa: E402
from edge.stages import PersonsOut  # noqa: E402
from trainer.cli import main  # noqa: E402

# The micro U-Net of persons_helpers.py, but no data size: the scene chooses it.
MICRO_YAML = """\
preset: tiny
data: {holdout_every: 0}
model: {channels: 8, channel_mult: [1, 2], attn_levels: [1], heads: 2, groups: 4}
diffusion: {timesteps: 100}
sample: {steps: 2, batch: 8}
train: {batch: 4, lr: 0.003, warmup: 2, sample_every: 0, log_every: 2, ckpt_every: 1000, ema_start: 0,
        ema_decay: 0.9, sample_n: 4, sample_steps: 2}
"""


def make_run(root: Path, n_cutouts: int = 8, orientation: str = "upright") -> Path:
    """A run directory whose manifest records a toy scene (compose's scene factory + scene.json, plates/)."""
    scene = make_scene(root / "scene", n_cutouts=n_cutouts, n_real=2)
    (scene / "scene.json").write_text(json.dumps({"orientation": orientation}))
    (scene / "plates").mkdir()
    names = ["plate.png", "plates", "walkable.png", "perspective.json", "cutouts", "cutouts.json", "scene.json"]
    m = Manifest.create(root, "toy")
    m.record_stage("scene", params={}, outputs={n: scene / n for n in names})
    m.save()
    return root


def persons(*argv: str) -> int:
    return main(["persons", *argv, "--no-progress"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("persons-stage")
    (tmp / "micro.yaml").write_text(MICRO_YAML)
    run = make_run(tmp / "run")
    assert persons("train", "--run", str(run), "--config", str(tmp / "micro.yaml"), "--steps", "3") == 0
    return {"run": run, "config": tmp / "micro.yaml"}


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_generator_stage_trains_on_the_scene_at_its_person_size(trained_run):
    m = Manifest.load(trained_run["run"])
    entry = m.stage("generator")
    assert {"last.pt", "generator.json", "loss.csv", "samples"} <= set(entry["outputs"])
    doc = json.loads(m.output("generator", "generator.json").read_text())
    # Toy people are 27..108 px (median ~60): clamped to the tiny preset's 80 px top, a multiple of 2.
    assert doc["size"][1] % 2 == 0 and 40 <= doc["size"][1] <= 80
    assert doc["sources"][0]["kind"] == "scene" and doc["counts"]["crops"] == 8
    assert doc["preset"] == "tiny" and doc["steps"] == 3 and doc["device"] == "cpu"
    assert set(entry["inputs"]) >= {"cutouts", "cutouts.json", "perspective.json"}


def test_persons_stage_end_to_end(trained_run, tmp_path):
    run = _copy(trained_run["run"], tmp_path / "run")
    assert persons("sample", "--run", str(run), "--n", "6", "--steps", "2") == 0
    m = Manifest.load(run)
    outs = m.stage("persons")["outputs"]
    assert set(outs) == {o.name for o in (PersonsOut.cutouts, PersonsOut.rejected, PersonsOut.persons_json,
                                          PersonsOut.contact_sheet)}
    assert "generator" in m.stage("persons")["inputs"]
    doc = json.loads(m.output("persons", "persons.json").read_text())
    assert doc["version"] == 1
    gate = doc["gate"]
    assert gate["by"] == "hog" and gate["model"] is None  # no exported detector, no teacher
    assert gate["sampled"] == 6 and gate["kept"] == len(doc["cutouts"])
    assert len(doc["cutouts"]) + len(doc["rejected"]) == 6
    assert gate["rejected_share"] == pytest.approx(len(doc["rejected"]) / 6, abs=1e-3)
    assert set(doc["generator"]) >= {"checkpoint", "sha256", "size", "sampler", "steps"}
    assert doc["generator"]["checkpoint"] == "generator/last.pt"
    scene_frames = {r["file"]: r["frame"] for r in json.loads((run / "scene" / "cutouts.json").read_text())}
    for rec in doc["cutouts"] + doc["rejected"]:
        assert set(rec) >= {"file", "frame", "silhouette", "flipped", "foot", "height_px", "gate_conf"}
        assert rec["frame"] == scene_frames[rec["silhouette"]]  # the frame of the silhouette it was drawn on
        img = cv2.imread(str(run / "persons" / rec["file"]), cv2.IMREAD_UNCHANGED)
        assert img.ndim == 3 and img.shape[2] == 4
        assert 0 <= img.shape[0] - rec["foot"][1] <= 4  # cropped to the person (and its feathered edge)
    kept = sorted(p.name for p in (run / "persons" / "cutouts").iterdir())
    assert kept == [Path(r["file"]).name for r in doc["cutouts"]]
    assert cv2.imread(str(run / "persons" / "contact_sheet.png")) is not None


def _real_person(shared: Path) -> np.ndarray:
    """BGRA crop of the first human-seg person, alpha from its mask."""
    img = cv2.imread(str(shared / "human-seg" / "images" / "1.jpg"))
    mask = cv2.imread(str(shared / "human-seg" / "masks" / "1.png"), cv2.IMREAD_GRAYSCALE)
    mask = cv2.resize(mask, img.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(mask > 127)
    rgba = np.dstack([img, np.where(mask > 127, 255, 0).astype(np.uint8)])
    return np.ascontiguousarray(rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def test_gate_keeps_a_real_person_and_rejects_a_blank_one(tmp_path, shared_data_optional):
    """A generated-person stand-in of each kind through the gate as the persons stage runs it. A drawn figure
    proves nothing about a detector, so the real side is a real photo and needs ../shared/data."""
    models = shared_data_optional / "models" if shared_data_optional else None
    if models is None or not (shared_data_optional / "human-seg").is_dir():
        pytest.skip("needs ../shared/data (human-seg and models/) for a real person and a real detector")
    from trainer.compose.scene import Cutout, load_scene
    from trainer.diffusion.gate import Gate, choose_gate
    from trainer.relabel.teacher import TeacherFile

    run = make_run(tmp_path / "run")
    teacher = TeacherFile(models / "coco-yolo11n-640-int8w.tflite", models / "coco-names-metadata.yaml")
    detector = choose_gate(Manifest.load(run), teacher)
    assert detector.by == "teacher"
    scene = load_scene(run / "scene")
    real = _real_person(shared_data_optional)
    blank = real.copy()
    blank[..., :3] = scene.plate.reshape(-1, 3).mean(axis=0).astype(np.uint8)  # the silhouette, no person in it
    h, w = real.shape[:2]
    for rgba, keep in ((real, True), (blank, False)):
        gate = Gate(scene, detector, conf=0.3, seed=0)
        verdict = gate.judge(Cutout("x", 0, rgba, (w / 2, float(h)), float(h), (0, 0, 0, 0)), frame=0)
        assert gate.passes(verdict) is keep, verdict


def _bad_checkpoint(good: Path, to: Path, how: str) -> Path:
    state = torch.load(good, map_location="cpu", weights_only=True)
    if how == "shape":
        state["config"]["model"]["channels"] = 16  # valid config, weights of 8 channels
    else:
        state["format"] = "cctvkit-persons/0"
    torch.save(state, to)
    return to


@pytest.mark.parametrize("how, says", [("shape", "do not fit"), ("version", "cctvkit-persons/0")])
def test_checkpoint_of_another_shape_or_version_exits_2(trained_run, tmp_path, capsys, how, says):
    run = _copy(trained_run["run"], tmp_path / "run")
    bad = _bad_checkpoint(run / "generator" / "last.pt", tmp_path / "other.pt", how)
    before = (run / "manifest.json").read_bytes()
    assert persons("sample", "--run", str(run), "--ckpt", str(bad), "--n", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and says in err[0] and " -- " in err[0]
    assert not (run / "persons").exists()
    assert (run / "manifest.json").read_bytes() == before


def test_empty_cutouts_exit_2(tmp_path, capsys):
    (tmp_path / "micro.yaml").write_text(MICRO_YAML)
    run = make_run(tmp_path / "run", n_cutouts=0)
    before = (run / "manifest.json").read_bytes()
    assert persons("train", "--run", str(run), "--config", str(tmp_path / "micro.yaml"), "--steps", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cutouts.json" in err[0] and "usable person cutouts" in err[0]
    assert not (run / "generator").exists() and (run / "manifest.json").read_bytes() == before

    plain = tmp_path / "plain"  # --data: PNGs, but none with an alpha channel
    plain.mkdir()
    cv2.imwrite(str(plain / "a.png"), np.zeros((40, 20, 3), np.uint8))
    assert persons("train", "--data", str(plain), "--out", str(tmp_path / "out"), "--steps", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.png" in err[0] and "alpha" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_camera_looking_down_is_refused(tmp_path, capsys):
    run = make_run(tmp_path / "run", orientation="any")
    assert persons("train", "--run", str(run), "--steps", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scene.json" in err[0] and "not upright" in err[0]
    assert not (run / "generator").exists()


def test_the_runs_own_exported_detector_is_the_gate_before_a_teacher(tmp_path):
    """A run that already has an exported detector gates with it (the issue's order: the run's detector,
    then --teacher, then HOG), read through the manifest's models like bench reads them."""
    from edge_builders import edge_builders

    from edge.backends.specs import spec_from_onnx
    from trainer.diffusion.gate import choose_gate
    from trainer.relabel.teacher import TeacherFile

    run = make_run(tmp_path / "run")
    head = np.zeros((1, 5, 8), np.float32)
    head[0, :5, 0] = [16, 38, 16, 36, 0.9]  # one person box, class 0
    meta = {"names": "{0: 'person'}", "imgsz": "[64, 64]", "task": "detect", "stride": "32"}
    (run / "export").mkdir()
    onnx = edge_builders().build_const_onnx(run / "export" / "detector-fp32.onnx", head, (64, 64), metadata=meta)
    teacher_onnx = edge_builders().build_const_onnx(tmp_path / "teacher.onnx", head, (64, 64), metadata=meta)
    m = Manifest.load(run)
    m.record_stage("export", params={}, outputs={"detector-fp32.onnx": onnx})
    spec = spec_from_onnx(onnx)
    m.add_model("detector-onnx-fp32", dataclasses.replace(spec, path="export/detector-fp32.onnx"))
    m.save()
    gate = choose_gate(Manifest.load(run), TeacherFile(teacher_onnx, None))
    assert gate.by == "detector" and Path(gate.model).resolve() == onnx.resolve()
    assert choose_gate(Manifest.load(make_run(tmp_path / "bare")), TeacherFile(teacher_onnx, None)).by == "teacher"
    assert choose_gate(Manifest.load(make_run(tmp_path / "none"))).by == "hog"
