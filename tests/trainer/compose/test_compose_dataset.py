"""End to end: a synthetic scene folder -> compose_dataset -> the files the training stage reads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from compose_scene_factory import BASE, ROW_RANGE, H, W, height_at, make_scene

from edge.errors import CctvkitError
from edge.formats.yolo import list_images, load_data_yaml, load_yolo_labels
from trainer.compose import ComposeParams, JitterParams, compose_dataset
from trainer.compose.placement import iou


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _composed_persons(doc: dict) -> list[tuple[dict, dict]]:
    return [(r, p) for r in doc["images"] if r["source"] == "composed" for p in r["persons"]]


def test_layout_counts_and_data_yaml(composed):
    out, summary, doc = composed
    assert summary["images"] == BASE["n_images"] == len(doc["images"])
    for split in ("train", "val"):
        images = list_images(out / "detect" / "images" / split)
        labels = sorted((out / "detect" / "labels" / split).glob("*.txt"))
        assert images and len(images) == len(labels)
        assert {p.stem for p in images} == {p.stem for p in labels}
    n_val = sum(r["split"] == "val" for r in doc["images"])
    assert n_val == round(BASE["n_images"] * 0.2)
    sources = {r["source"] for r in doc["images"]}
    assert sources == {"composed", "negative", "real"}
    data = load_data_yaml(out / "detect" / "data.yaml")
    assert data["names"] == {0: "person"} and data["train"] == "images/train" and data["val"] == "images/val"
    sheet = cv2.imread(str(out / "preview.png"))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.shape[1] > 100


def test_labels_are_class_zero_and_match_compose_json(composed):
    out, _, doc = composed
    for rec in doc["images"]:
        cls, xyxy = load_yolo_labels(out / rec["label"], W, H)
        assert set(cls.tolist()) <= {0}
        if rec["source"] == "composed":
            boxes = [p["box"] for p in rec["persons"] if p.get("labelled")]
            assert len(boxes) == len(xyxy)
            for got, want in zip(xyxy, boxes, strict=True):
                assert np.allclose(got, want, atol=0.01)


def test_negatives_have_empty_label_files(composed):
    out, _, doc = composed
    negatives = [r for r in doc["images"] if r["source"] == "negative"]
    assert negatives
    for rec in negatives:
        assert (out / rec["label"]).read_text() == ""
        assert "persons" not in rec and "jitter" in rec


def test_composed_images_have_persons_and_provenance(composed):
    _, summary, doc = composed
    assert summary["persons_labelled"] > 0
    for rec, person in _composed_persons(doc):
        for key in ("cutout", "foot", "target_height", "scale", "flip", "blend", "pasted"):
            assert key in person
        if person["pasted"]:
            assert "visible_fraction" in person and "box" in person and "harmonize" in person
        assert {"brightness", "contrast", "noise_sigma", "jpeg_quality"} <= set(rec["jitter"])


def test_feet_inside_walkable_mask_and_row_range(composed, scene_dir):
    _, _, doc = composed
    walkable = cv2.imread(str(scene_dir / "walkable.png"), cv2.IMREAD_GRAYSCALE) > 127
    persons = _composed_persons(doc)
    assert len(persons) > 20
    for _, p in persons:
        x, y = p["foot"]
        assert walkable[y, x], p
        assert ROW_RANGE[0] <= y <= ROW_RANGE[1]


def test_persons_scaled_by_perspective(composed):
    _, _, doc = composed
    rows, heights = [], []
    for _, p in _composed_persons(doc):
        expected = height_at(p["foot"][1])
        assert 0.9 * expected - 0.01 <= p["target_height"] <= 1.1 * expected + 0.01
        if p.get("labelled") and p["visible_fraction"] > 0.95:  # whole persons: the box shows the real size
            rows.append(p["foot"][1])
            heights.append(p["box"][3] - p["box"][1])
    assert len(rows) > 10
    # A person pasted lower in the frame is taller, by the perspective's slope.
    slope, _ = np.polyfit(rows, heights, 1)
    assert np.corrcoef(rows, heights)[0, 1] > 0.9
    assert 0.45 < slope < 0.75  # the scene's a = 0.6, the alpha box loses a pixel or two to feathering


def test_split_by_source_material(composed):
    _, summary, doc = composed
    used = {"train": set(), "val": set()}
    for rec, p in _composed_persons(doc):
        used[rec["split"]].add(p["cutout"])
    assert used["train"] and used["val"]
    assert not used["train"] & used["val"], "a cutout was used in both train and val"
    real = {"train": set(), "val": set()}
    for rec in doc["images"]:
        if rec["source"] == "real":
            real[rec["split"]].add(rec["frame_file"])
    assert not real["train"] & real["val"]
    assert summary["split"]["cutouts"]["train"] > summary["split"]["cutouts"]["val"] > 0


def test_holdout_never_used(composed):
    out, _, doc = composed
    assert "holdout" not in json.dumps(doc["images"])
    assert not any("holdout" in p.name for p in out.rglob("*"))


def test_classify_folders_balanced_square(composed):
    out, summary, _ = composed
    size = BASE["cls_size"]
    for split in ("train", "val"):
        person = list((out / "classify" / split / "person").glob("*.jpg"))
        no_person = list((out / "classify" / split / "no_person").glob("*.jpg"))
        assert person and len(person) == len(no_person)
        assert summary["classify"][split] == {"person": len(person), "no_person": len(no_person)}
        for p in person[:3] + no_person[:3]:
            assert cv2.imread(str(p)).shape == (size, size, 3)


def test_deterministic_under_seed(scene_dir, tmp_path):
    params = dict(BASE, n_images=12)
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        (tmp_path / name).mkdir()
        compose_dataset(scene_dir, tmp_path / name, ComposeParams(**dict(params, seed=seed)), progress=False)
        outs.append(_tree_hash(tmp_path / name))
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


@pytest.mark.parametrize("blend", ["hard", "feather"])
def test_label_box_matches_pasted_pixels(tmp_path, blend):
    """With jitter, shadow and harmonising off, the pixels that differ from the plate are the person.

    Near-white figures: JPEG keeps brightness at full resolution but halves colour resolution, so a
    brightness difference marks the person's pixels exactly where a colour difference would bleed a pixel."""
    scene_dir = make_scene(tmp_path / "scene", n_cutouts=6, n_real=0, colours=[(250, 250, 250)])
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    params = ComposeParams(
        n_images=10,
        seed=1,
        persons_per_image=(1, 1),
        blend=blend,
        shadow_strength=0,
        harmonize_strength=0,
        real_fraction=0,
        negative_fraction=0,
        min_person_px=20,
        jitter=JitterParams.off(),
    )
    compose_dataset(scene_dir, tmp_path, params, progress=False)
    plate = cv2.imread(str(scene_dir / "plate.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    doc = json.loads((tmp_path / "compose.json").read_text())
    checked = 0
    for rec in doc["images"]:
        img = cv2.imread(str(tmp_path / rec["image"]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        # Per-pixel coverage: how far each pixel moved from the plate towards the figure's white.
        ys, xs = np.nonzero((img - plate) / (250 - plate) > 0.5)
        (box,) = [p["box"] for p in rec["persons"] if p.get("labelled")]
        pasted = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert iou(box, pasted) > 0.9, (rec["image"], box, pasted)
        checked += 1
    assert checked == 10


@pytest.mark.parametrize(
    "missing", ["plate.png", "walkable.png", "perspective.json", "cutouts.json", "cutouts/00003.png"]
)
def test_missing_scene_file_names_it(scene_dir, tmp_path, missing):
    broken = tmp_path / "scene"
    shutil.copytree(scene_dir, broken)
    (broken / missing).unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CctvkitError) as e:
        compose_dataset(broken, out, ComposeParams(**BASE), progress=False)
    assert missing in str(e.value)
    assert list(out.iterdir()) == [], "bad input must leave nothing half-written"


def test_unknown_blend_in_params_errors_before_writing(scene_dir, tmp_path):
    with pytest.raises(CctvkitError, match="feather") as e:
        compose_dataset(scene_dir, tmp_path, ComposeParams(**dict(BASE, blend="glue")), progress=False)
    assert "glue" in str(e.value)
    assert list(tmp_path.iterdir()) == []
