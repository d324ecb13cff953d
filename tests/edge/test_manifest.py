from __future__ import annotations

import json

import pytest

from edge.atomic import atomic_dir
from edge.errors import CctvkitError
from edge.manifest import Manifest, sha256_tree
from edge.types import ModelSpec, QuantParams


def _run(tmp_path):
    run = tmp_path / "run"
    (run / "scene" / "cutouts").mkdir(parents=True)
    (run / "scene" / "plate.png").write_bytes(b"plate")
    (run / "scene" / "cutouts" / "a.png").write_bytes(b"a")
    video = tmp_path / "v.avi"
    video.write_bytes(b"video")
    m = Manifest.create(run, "run")
    m.record_stage("scene", params={"k": 1}, outputs={"plate.png": run / "scene" / "plate.png",
                                                      "cutouts": run / "scene" / "cutouts"},
                   external_inputs={"video": video}, seconds=1.234)
    m.save()
    return run, m


def test_round_trip_and_verified_outputs(tmp_path):
    run, _ = _run(tmp_path)
    m = Manifest.load(run)
    assert m.output("scene", "plate.png") == run / "scene" / "plate.png"
    entry = m.stage("scene")
    assert entry["outputs"]["cutouts"]["files"] == 1
    assert entry["outputs"]["plate.png"]["path"] == "scene/plate.png"
    assert entry["inputs"]["video"]["path"].endswith("v.avi")
    assert entry["seconds"] == 1.23


def test_changed_output_is_refused(tmp_path):
    run, _ = _run(tmp_path)
    (run / "scene" / "cutouts" / "a.png").write_bytes(b"tampered")
    with pytest.raises(CctvkitError, match="sha256 does not match"):
        Manifest.load(run).output("scene", "cutouts")


def test_old_manifest_version_names_the_file_and_fix(tmp_path):
    run, _ = _run(tmp_path)
    doc = json.loads((run / "manifest.json").read_text())
    doc["version"] = 0
    (run / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(CctvkitError) as e:
        Manifest.load(run)
    assert "manifest.json" in str(e.value) and "trainer demo" in str(e.value)


def test_missing_stage_says_which_command_to_run(tmp_path):
    run, m = _run(tmp_path)
    with pytest.raises(CctvkitError, match="trainer compose"):
        m.output("compose", "detect")


def test_models_round_trip_with_quant_params(tmp_path):
    run, m = _run(tmp_path)
    (run / "model.onnx").write_bytes(b"onnx")
    spec = ModelSpec(task="detect", format="onnx", precision="int8", path="model.onnx", imgsz=(320, 320),
                     class_names=["person"], input_dtype="int8", input_quant=QuantParams(0.0039, -128))
    m.add_model("det", spec)
    m.save()
    loaded = Manifest.load(run).models()["det"]
    assert loaded.imgsz == (320, 320) and loaded.input_quant == QuantParams(0.0039, -128)
    assert len(loaded.sha256) == 64
    assert Manifest.load(run).model_path("det") == run / "model.onnx"
    with pytest.raises(CctvkitError, match="choose one of: det"):
        Manifest.load(run).model_path("nope")


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_existing(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_dir(final) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert sha256_tree(final) != ""


def test_ncnn_weights_beside_the_param_are_checked_too(tmp_path):
    run, m = _run(tmp_path)
    (run / "export").mkdir()
    (run / "export" / "det.param").write_text("7767517\n")
    (run / "export" / "det.bin").write_bytes(b"weights")
    spec = ModelSpec(task="detect", format="ncnn", precision="int8", path="export/det.param", imgsz=(320, 320),
                     class_names=["person"], extra_files=["det.bin"])
    m.add_model("det", spec)
    m.save()
    assert Manifest.load(run).model_path("det") == run / "export" / "det.param"
    (run / "export" / "det.bin").write_bytes(b"other weights")
    with pytest.raises(CctvkitError, match=r"det\.bin: sha256 does not match"):
        Manifest.load(run).model_path("det")
