"""compose.persons (real and generated person sources) and compose.label_classes (merged | split)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from compose_scene_factory import BASE, H, W
from persons_factory import make_persons

from edge.errors import CctvkitError
from edge.formats.yolo import load_data_yaml, load_yolo_labels
from edge.manifest import Manifest
from edge.stages import PERSONS, SCENE
from trainer import pipeline
from trainer.compose import ComposeParams, compose_dataset
from trainer.config import PipelineConfig

MIX = {**BASE, "n_images": 40, "persons": {"real": 0.5, "generated": 0.5}}


@pytest.fixture(scope="module")
def persons_dir(scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_persons(scene_dir, tmp_path_factory.mktemp("persons") / "persons")


def _compose(scene_dir: Path, out: Path, generated: Path | None, **params) -> tuple[dict, dict]:
    out.mkdir()
    summary = compose_dataset(scene_dir, out, ComposeParams(**params), progress=False, persons_dir=generated)
    return summary, json.loads((out / "compose.json").read_text())


def _persons(doc: dict) -> list[tuple[dict, dict]]:
    return [(r, p) for r in doc["images"] if r["source"] == "composed" for p in r["persons"]]


def test_a_half_half_mix_pastes_both_sources_with_provenance(scene_dir, persons_dir, tmp_path):
    summary, doc = _compose(scene_dir, tmp_path / "out", persons_dir, **MIX)
    pasted = [(r, p) for r, p in _persons(doc) if p["pasted"]]
    generated = [p for _, p in pasted if p["source"] == "generated"]
    assert {p["source"] for _, p in pasted} == {"real", "generated"}
    assert 0.3 < len(generated) / len(pasted) < 0.7, "about half the persons are generated"
    for p in generated:
        assert (persons_dir / p["cutout"]).is_file() and "harmonize" in p  # the real persons' path
    assert summary["persons_by_source"] == doc["persons_by_source"]
    assert sum(sum(c.values()) for c in doc["persons_by_source"].values()) == summary["persons_labelled"]
    # A generated person lands in the split its silhouette's frame belongs to, never in both.
    frame = {r["file"]: r["frame"] for r in json.loads((persons_dir / "persons.json").read_text())["cutouts"]}
    used = {s: {frame[p["cutout"]] for r, p in _persons(doc) if p["source"] == "generated" and r["split"] == s}
            for s in ("train", "val")}
    assert used["train"] and used["val"] and not used["train"] & used["val"]


def test_generated_only_and_split_labels(scene_dir, persons_dir, tmp_path):
    params = {**BASE, "persons": {"generated": 1.0}, "label_classes": "split"}
    summary, doc = _compose(scene_dir, tmp_path / "out", persons_dir, **params)
    assert {p["source"] for _, p in _persons(doc)} == {"generated"}
    assert all(c["real"] == 0 for c in summary["persons_by_source"].values())
    data = load_data_yaml(tmp_path / "out" / "detect" / "data.yaml")
    assert data["names"] == {0: "person", 1: "person_synthetic"}
    for rec in doc["images"]:
        cls, _ = load_yolo_labels(tmp_path / "out" / rec["label"], W, H)
        want = {"composed": {1}, "real": {0}, "negative": set()}[rec["source"]]
        assert set(cls.tolist()) <= want


def test_split_labels_of_a_mix_keep_real_persons_class_zero(scene_dir, persons_dir, tmp_path):
    _, doc = _compose(scene_dir, tmp_path / "out", persons_dir, **MIX, label_classes="split")
    seen = set()
    for rec in doc["images"]:
        if rec["source"] != "composed":
            continue
        cls, _ = load_yolo_labels(tmp_path / "out" / rec["label"], W, H)
        want = [{"real": 0, "generated": 1}[p["source"]] for p in rec["persons"] if p.get("labelled")]
        assert cls.tolist() == want
        seen |= set(want)
    assert seen == {0, 1}


def test_broken_persons_folder_is_one_line_error_and_nothing_written(scene_dir, tmp_path):
    persons = make_persons(scene_dir, tmp_path / "empty", empty_alpha=True)
    (persons / "cutouts" / "00001.png").write_bytes(b"not a png")  # unreadable ones count as unusable too
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CctvkitError) as e:
        compose_dataset(scene_dir, out, ComposeParams(**MIX), progress=False, persons_dir=persons)
    msg = str(e.value)
    assert "\n" not in msg and str(persons / "cutouts") in msg and "trainer persons sample --run RUN" in msg
    assert list(out.iterdir()) == []


def _scene_run(scene_dir: Path, root: Path) -> Manifest:
    """A run whose scene stage is the toy scene folder (plus the files a real scene stage also writes)."""
    m = Manifest.create(root / "run", "run")
    m.run_dir.mkdir(parents=True)
    m.save()

    def body(out: Path) -> dict:
        shutil.copytree(scene_dir, out, dirs_exist_ok=True)
        (out / "plates").mkdir()
        (out / "distractors").mkdir()
        (out / "distractors.json").write_text("[]")
        (out / "scene.json").write_text("{}")
        (out / "frame_keys.json").write_text("{}")
        cv2.imwrite(str(out / "overview.png"), np.zeros((8, 8, 3), np.uint8))
        return {"params": {}, "outputs": SCENE.collect(out)}

    m.write_stage(SCENE.name, body)
    return m


def test_compose_reads_persons_through_the_manifest(scene_dir, tmp_path):
    m = _scene_run(scene_dir, tmp_path)
    cfg = PipelineConfig.model_validate({"compose": {**MIX, "n_images": 16}})
    with pytest.raises(CctvkitError) as e:
        pipeline.run_compose(m, cfg, progress=False)
    msg = str(e.value)
    assert "compose.persons" in msg and "trainer persons sample --run RUN" in msg and "\n" not in msg
    assert not (m.run_dir / "compose").exists()

    def persons_body(out: Path) -> dict:
        make_persons(m.run_dir / "scene", out)
        return {"params": {}, "outputs": PERSONS.collect(out)}

    m.write_stage(PERSONS.name, persons_body)
    entry = pipeline.run_compose(m, cfg, progress=False)
    assert {"persons.json", "persons_cutouts"} <= set(entry["inputs"])
    assert entry["summary"]["persons_by_source"]["train"]["generated"] > 0


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_worker_processes_write_the_same_files(scene_dir: Path, persons_dir: Path, tmp_path: Path) -> None:
    """compose.workers changes how fast, never what: two spawned workers write byte-identical files (every
    image draws from its own seeded generator), compose.json included (workers is not recorded in it)."""
    params = {**MIX, "n_images": 80}  # 64+ jobs: two workers are used (trainer/compose/workers.py)
    one, _ = _compose(scene_dir, tmp_path / "one", persons_dir, **params, workers=1)
    two, _ = _compose(scene_dir, tmp_path / "two", persons_dir, **params, workers=2)
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) > 80
    assert [k for k in a if a[k] != b[k]] == []
    assert one["persons_by_source"] == two["persons_by_source"]
    assert one["persons_by_source"]["train"]["generated"] > 0


def test_a_grey_camera_is_told_from_a_colour_one(scene_dir: Path, tmp_path: Path) -> None:
    """The persons stage greys its samples on a monochrome camera (trainer/diffusion/runscene.py): the toy
    scene's coloured persons are colour; the same persons written grey are monochrome."""
    from trainer.compose.scene import load_scene
    from trainer.diffusion.runscene import is_monochrome

    assert not is_monochrome(load_scene(scene_dir))
    grey = tmp_path / "scene"
    shutil.copytree(scene_dir, grey)
    for png in (grey / "cutouts").glob("*.png"):
        bgra = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        bgra[..., :3] = cv2.cvtColor(cv2.cvtColor(bgra[..., :3], cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)[..., :3]
        cv2.imwrite(str(png), bgra)
    assert is_monochrome(load_scene(grey))
