"""The manifest's stage rules: paths confined to the run directory, re-runs drop the stages built on the old
result, "complete" says whether a whole pipeline is there, and a stage records only what it declares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.stages import PIPELINES, STAGES, SceneOut, TrainOut, dataset_stage, is_complete
from edge.types import ModelSpec

REPO = Path(__file__).resolve().parents[2]


def _stage(m: Manifest, name: str, files: tuple[str, ...] = ("out.bin",)) -> None:
    folder = m.run_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f).write_bytes(name.encode())
    m.record_stage(name, params={}, outputs={f: folder / f for f in files})


def _run_with_model(tmp_path: Path) -> tuple[Path, Manifest]:
    run = tmp_path / "run"
    m = Manifest.create(run, "run")
    for name in ("scene", "compose", "train", "export"):
        _stage(m, name, ("det.onnx",) if name == "export" else ("out.bin",))
    m.add_model("det", ModelSpec(task="detect", format="onnx", precision="fp32", path="export/det.onnx",
                                 imgsz=(64, 64), class_names=["person"]))
    m.save()
    return run, m


def _tamper(run: Path, where: list[str], value: str) -> None:
    doc = json.loads((run / "manifest.json").read_text())
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    (run / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("where", [["stages", "train", "outputs", "out.bin", "path"], ["models", "det", "path"]])
def test_a_path_out_of_the_run_is_refused_at_load_with_its_key(tmp_path, where):
    run, _ = _run_with_model(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    _tamper(run, where, "../secret.txt")
    if where[0] == "stages":  # a matching sha256 does not make it acceptable
        doc = json.loads((run / "manifest.json").read_text())
        from edge.atomic import sha256_file

        doc["stages"]["train"]["outputs"]["out.bin"]["sha256"] = sha256_file(secret)
        (run / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(CctvkitError) as e:
        Manifest.load(run)
    key = "stages.train.outputs.out.bin" if where[0] == "stages" else "models.det.path"
    assert key in str(e.value) and "manifest.json" in str(e.value) and "outside the run directory" in str(e.value)
    assert "\n" not in str(e.value)


def test_absolute_paths_and_escaping_symlinks_are_refused(tmp_path):
    run, _ = _run_with_model(tmp_path)
    _tamper(run, ["stages", "scene", "outputs", "out.bin", "path"], "/etc/passwd")
    with pytest.raises(CctvkitError, match=r"stages\.scene\.outputs\.out\.bin points outside"):
        Manifest.load(run)
    run, _ = _run_with_model(tmp_path / "b")
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"export")  # same bytes as the file the link replaces: the hash would match
    (run / "export" / "det.onnx").unlink()
    os.symlink(outside, run / "export" / "det.onnx")
    with pytest.raises(CctvkitError, match=r"stages\.export\.outputs\.det\.onnx points outside"):
        Manifest.load(run)  # the export's own entry for the file is checked first, then the model's


def test_paths_inside_the_run_still_load_and_external_inputs_stay_provenance(tmp_path):
    run, m = _run_with_model(tmp_path)
    video = tmp_path / "video.avi"  # the user's input lies outside the run: recorded, never resolved
    video.write_bytes(b"video")
    m.record_stage("bench", params={}, outputs={}, external_inputs={"video": video},
                   inputs={"holdout": run / "scene" / "out.bin"})
    m.save()
    (run / "inner").mkdir()
    os.symlink(run / "scene" / "out.bin", run / "inner" / "link.bin")  # a link that stays inside is fine
    _tamper(run, ["stages", "scene", "outputs", "out.bin", "path"], "inner/../inner/link.bin")
    loaded = Manifest.load(run)
    assert loaded.output("scene", "out.bin").read_bytes() == b"scene"
    assert loaded.model_path("det") == run / "export" / "det.onnx"
    assert loaded.stage("bench")["inputs"]["video"]["path"] == str(video.resolve())


def test_a_writer_cannot_record_a_path_out_of_the_run(tmp_path):
    m = Manifest.create(tmp_path / "run", "run")
    (tmp_path / "run").mkdir()
    stray = tmp_path / "stray.txt"
    stray.write_text("x")
    with pytest.raises(CctvkitError, match=r"stages\.train\.outputs\.detector\.pt lies outside"):
        m.record_stage("train", params={}, outputs={"detector.pt": stray})


def test_cli_refuses_an_escaping_manifest_with_exit_2(tmp_path):
    run, _ = _run_with_model(tmp_path)
    _tamper(run, ["models", "det", "path"], "../../../../etc/passwd")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "detect", str(image), "--manifest", str(run),
                           "--model", "det"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "models.det.path points outside the run directory" in lines[0]


def test_rerunning_a_stage_drops_the_later_ones_and_their_models(tmp_path, capsys):
    run, m = _run_with_model(tmp_path)
    _stage(m, "bench")
    assert m.data["complete"] is True
    capsys.readouterr()
    _stage(m, "compose")  # a new data set: the detector and its exports no longer follow from it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train, export, bench" in err[0] and "'compose'" in err[0]
    assert list(m.data["stages"]) == ["scene", "compose"] and m.data["models"] == {}
    assert m.data["complete"] is False
    m.save()
    assert Manifest.load(run).data["complete"] is False


def test_re_exporting_keeps_only_the_models_it_recorded(tmp_path, capsys):
    run, m = _run_with_model(tmp_path)
    _stage(m, "bench")
    _stage(m, "export", ("other.onnx",))  # this export no longer makes det.onnx
    assert "bench" in capsys.readouterr().err
    assert m.data["models"] == {} and "bench" not in m.data["stages"]
    _stage(m, "export", ("det.onnx",))
    m.add_model("det", ModelSpec(task="detect", format="onnx", precision="fp32", path="export/det.onnx",
                                 imgsz=(64, 64), class_names=["person"]))
    _stage(m, "export", ("det.onnx",))  # re-recorded with det.onnx among its outputs: the model stays
    assert set(m.data["models"]) == {"det"}
    assert capsys.readouterr().err == ""  # nothing after export was there to drop


def test_complete_means_a_whole_pipeline(tmp_path):
    m = Manifest.create(tmp_path / "run", "run")
    for name in ("import", "train"):
        _stage(m, name)
        assert m.data["complete"] is False
    _stage(m, "export")
    assert m.data["complete"] is True  # an imported run ends at export: bench scores the scene's holdout
    assert dataset_stage(m.data["stages"]) == "import"
    _stage(m, "scene")  # the other route from its start: the import and what was built on it go
    assert list(m.data["stages"]) == ["scene"] and m.data["complete"] is False
    assert dataset_stage(m.data["stages"]) == "compose"
    assert all(s in STAGES for p in PIPELINES for s in p) and not is_complete(["scene", "compose", "train"])


def test_a_stage_records_only_what_it_declares(tmp_path):
    m = Manifest.create(tmp_path / "run", "run")

    def body(out: Path) -> dict:
        (out / TrainOut.detector.name).write_bytes(b"pt")
        (out / "notes.txt").write_text("?")
        return {"params": {}, "outputs": {TrainOut.detector.name: out / TrainOut.detector.name,
                                          "notes.txt": out / "notes.txt"}}

    with pytest.raises(CctvkitError, match="records 'notes.txt', which it does not declare"):
        m.write_stage("train", body)
    assert not (tmp_path / "run" / "train").exists()  # nothing half-written
    scene = tmp_path / "scene"
    scene.mkdir()
    (scene / SceneOut.plate.name).write_bytes(b"png")
    with pytest.raises(CctvkitError, match="did not write"):
        STAGES["scene"].collect(scene)
    (scene / "debug.png").write_bytes(b"png")
    with pytest.raises(CctvkitError, match="wrote debug.png, which it does not declare"):
        STAGES["scene"].collect(scene)


def test_a_new_scene_drops_the_labels_matched_to_the_old_one(tmp_path, capsys):
    run, m = _run_with_model(tmp_path)
    m.data["eval_labels"] = {"path": str(tmp_path / "labels"), "held_out_labelled_frames": 3}
    _stage(m, "compose")  # a later stage keeps them: the frames they were matched to are the same
    assert "eval_labels" in m.data
    capsys.readouterr()
    _stage(m, "scene")
    err = capsys.readouterr().err
    assert "eval_labels" not in m.data and "pass --labels again" in err
    m.save()
    assert "eval_labels" not in Manifest.load(run).data
