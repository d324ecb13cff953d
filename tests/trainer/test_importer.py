"""`trainer import`: time-block splits without leakage, the data sets `trainer train` reads, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CctvkitError
from edge.formats.yolo import list_images, load_data_yaml
from edge.manifest import Manifest
from trainer.importer import import_run, natural_key, split_blocks
from trainer.yolo.train import stage_classify_dataset, stage_detect_dataset

ROOT = Path(__file__).resolve().parents[2]
N_FRAMES, BLOCK, GUARD = 60, 6, 1
EMPTY = {7, 8, 33}  # frames with an empty label file
UNLABELLED = {20, 45}  # frames with no label file at all (no person, by the YOLO convention)


def make_footage(root: Path, n: int = N_FRAMES, negatives: int = 30) -> tuple[Path, Path]:
    """frame_1.jpg .. frame_n.jpg (not zero-padded: natural order matters), one bright 'person' each."""
    rng = np.random.default_rng(0)
    data, neg = root / "footage", root / "plates"
    for i in range(1, n + 1):
        img = rng.integers(20, 60, (48, 64, 3), dtype=np.uint8)
        x = 4 + (i * 3) % 50
        img[10:30, x : x + 8] = 230
        (data / "images").mkdir(parents=True, exist_ok=True)
        (data / "labels").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / "images" / f"frame_{i}.jpg"), img)
        if i in UNLABELLED:
            continue
        text = "" if i in EMPTY else f"0 {(x + 4) / 64:.6f} {20 / 48:.6f} {8 / 64:.6f} {20 / 48:.6f}\n"
        (data / "labels" / f"frame_{i}.txt").write_text(text)
    neg.mkdir()
    for j in range(negatives):
        cv2.imwrite(str(neg / f"plate_{j}.png"), rng.integers(20, 60, (48, 64), dtype=np.uint8))
    return data, neg


def frame_index(path: Path) -> int:
    return int(path.stem.split("_")[-1])


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:
    root = tmp_path_factory.mktemp("import")
    data, neg = make_footage(root)
    m = import_run(
        data, "mine", root / "runs", neg, progress=False, block_size=BLOCK, guard=GUARD, cls_size=64
    )
    return m, root


def test_blocks_never_straddle_splits(imported):
    m, _ = imported
    detect = m.output("import", "detect")
    members = {
        s: sorted(frame_index(p) for p in list_images(detect / "images" / s))
        for s in ("train", "val", "test")
    }
    blocks = {s: {(i - 1) // BLOCK for i in idx} for s, idx in members.items()}
    assert all(members.values())
    assert not (blocks["train"] & blocks["val"]) and not (blocks["train"] & blocks["test"])
    assert not (blocks["val"] & blocks["test"])
    split_of = {b: s for s, bs in blocks.items() for b in bs}
    used = {i for idx in members.values() for i in idx}
    for i in range(1, N_FRAMES + 1):
        b, offset = divmod(i - 1, BLOCK)
        after_other = b > 0 and split_of[b - 1] != split_of[b]
        # A frame is left out exactly when it is in the guard band after a change of split.
        assert (i not in used) == (after_other and offset < GUARD), i
    # Spread over the footage, not one end of it: test is neither the first nor only the last blocks.
    assert min(blocks["test"]) > 0 and min(blocks["test"]) < 10 - len(blocks["test"])
    listing = json.loads(m.output("import", "import.json").read_text())
    assert {s: sorted(frame_index(Path(p)) for p in v) for s, v in listing["splits"].items()} == members


def test_manifest_and_layout(imported):
    m, _ = imported
    stage = m.stage("import")
    assert stage["params"]["source"] == "import" and stage["params"]["guard"] == GUARD
    assert set(stage["outputs"]) >= {"detect", "classify", "holdout", "import.json"}
    detect = m.output("import", "detect")
    doc = load_data_yaml(detect / "data.yaml")
    assert doc["names"] == {0: "person"} and doc["test"] == "images/test" and "path" not in doc
    for label in (detect / "labels").rglob("*.txt"):
        i = frame_index(label)
        assert (label.read_text() == "") == (i in EMPTY | UNLABELLED)
    holdout = m.output("import", "holdout")
    test_imgs = [p.name for p in list_images(detect / "images" / "test")]
    assert [p.name for p in list_images(holdout / "images")] == test_imgs
    for name in test_imgs:
        stem = Path(name).stem
        assert (holdout / "labels" / f"{stem}.txt").read_text() == (
            detect / "labels" / "test" / f"{stem}.txt"
        ).read_text()


def test_classify_set_matches_labels(imported):
    m, _ = imported
    classify = m.output("import", "classify")
    summary = m.stage("import")["summary"]
    for split in ("train", "val", "test"):
        person = list_images(classify / split / "person")
        nop = list_images(classify / split / "no_person")
        assert not any(frame_index(p) in EMPTY | UNLABELLED for p in person)
        assert any(p.name.startswith("neg__") for p in nop), split  # negatives reach every split
        assert summary["classify"][split] == {"person": len(person), "no_person": len(nop)}
        img = cv2.imread(str(person[0]))
        assert img.shape[:2] == (64, 64)  # whole frame squashed, as the device's classifier sees it
    # Negatives are split in blocks too, and the test ones sit beside the held-out frames, unsquashed.
    negs = json.loads(m.output("import", "import.json").read_text())["negative_splits"]
    held = sorted(p.name for p in list_images(m.output("import", "holdout") / "negatives"))
    assert held == sorted(negs["test"])
    assert cv2.imread(str(m.output("import", "holdout") / "negatives" / held[0])).shape[:2] == (48, 64)
    k = json.loads(m.output("import", "import.json").read_text())["negative_block_size"]
    neg_blocks = {s: {frame_index(Path(p)) // k for p in v} for s, v in negs.items()}
    assert not (neg_blocks["train"] & neg_blocks["test"]) and not (neg_blocks["train"] & neg_blocks["val"])
    trained = {p.stem for p in list_images(classify / "train" / "no_person")}
    assert not any(f"neg__{Path(n).stem}" in trained for n in held)


def test_trainer_accepts_the_data_sets(imported, tmp_path):
    """The staging that `trainer train` does first takes both sets as they are."""
    m, _ = imported
    staged, names = stage_detect_dataset(m.output("import", "detect") / "data.yaml", tmp_path / "det")
    assert names == ["person"] and (tmp_path / "det" / "images" / "test").is_dir()
    assert stage_classify_dataset(m.output("import", "classify"), tmp_path / "cls") == [
        "no_person",
        "person",
    ]


def test_deterministic(imported, tmp_path):
    m, root = imported
    again = import_run(
        root / "footage",
        "again",
        tmp_path,
        root / "plates",
        progress=False,
        block_size=BLOCK,
        guard=GUARD,
        cls_size=64,
    )
    a = json.loads(m.output("import", "import.json").read_text())
    b = json.loads(again.output("import", "import.json").read_text())
    assert a == b


def test_split_blocks_quota_and_spread():
    blocks = split_blocks(2300, 100, 0.2, 0.2)
    assert len(blocks) == 23 and blocks.count("test") == 5 and blocks.count("val") == 5
    test_ids = [i for i, s in enumerate(blocks) if s == "test"]
    assert max(b - a for a, b in zip(test_ids, test_ids[1:], strict=False)) <= 6  # spread, not clumped
    assert "test" not in split_blocks(1000, 100, 0.2, 0.0)
    with pytest.raises(CctvkitError, match="block-size"):
        split_blocks(150, 100, 0.2, 0.2)


def test_natural_order():
    names = [Path(f"f_{i}.jpg") for i in (10, 2, 1)]
    assert [p.name for p in sorted(names, key=natural_key)] == ["f_1.jpg", "f_2.jpg", "f_10.jpg"]


# --- bad input: one line naming the file and the fix, exit 2, no run directory left ----------------------


def trainer_import(data: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.cli",
            "import",
            "--data",
            str(data),
            "--name",
            "x",
            "--runs-dir",
            str(runs),
            "--block-size",
            "6",
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def assert_error(proc: subprocess.CompletedProcess, runs: Path, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".cctvkit")]


def test_label_without_image(tmp_path):
    data, _ = make_footage(tmp_path, n=30, negatives=0)
    (data / "labels" / "ghost_3.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert_error(trainer_import(data, tmp_path / "runs"), tmp_path / "runs", "ghost_3.txt", "has no matching image")


def test_images_without_any_label(tmp_path):
    data, _ = make_footage(tmp_path, n=30, negatives=0)
    for p in (data / "labels").iterdir():
        p.unlink()
    assert_error(
        trainer_import(data, tmp_path / "runs"), tmp_path / "runs", "none of the 30 images", "labels/"
    )


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_error(
        trainer_import(tmp_path / "empty", tmp_path / "runs"), tmp_path / "runs", "empty", "no images"
    )


def test_image_that_does_not_decode(tmp_path):
    data, neg = make_footage(tmp_path, n=30, negatives=10)
    (data / "images" / "frame_17.jpg").write_bytes(b"not a jpeg at all")
    proc = trainer_import(data, tmp_path / "runs", "--negatives", str(neg))
    assert_error(proc, tmp_path / "runs", "frame_17.jpg", "does not decode")


def test_existing_run_needs_force(tmp_path):
    data, _ = make_footage(tmp_path, n=30, negatives=0)
    assert trainer_import(data, tmp_path / "runs").returncode == 0
    proc = trainer_import(data, tmp_path / "runs")
    assert proc.returncode == 2 and "--force" in proc.stderr


def test_real_thermal_harbour(shared_data, tmp_path):
    src = shared_data / "thermal-harbour"
    if not (src / "images").is_dir():
        pytest.skip("needs ../shared/data/thermal-harbour")
    m = import_run(src, "thermal", tmp_path, src / "backgrounds", progress=False, block_size=100)
    s = m.stage("import")["summary"]
    assert s["frames"] == 2286 and s["negatives"] == 401 and s["blocks"] == 23
    detect = m.output("import", "detect")
    blocks = {
        sp: {(frame_index(p) - 1) // 100 for p in list_images(detect / "images" / sp)}
        for sp in ("train", "val", "test")
    }
    assert sum(len(b) for b in blocks.values()) == 23  # every block in exactly one split
    assert sum(s["detect"][sp]["frames"] for sp in blocks) + s["dropped_by_guard"] == 2286
    assert sum(s["detect"][sp]["boxes"] for sp in blocks) <= 10234
    assert len(list_images(m.output("import", "holdout") / "images")) == s["detect"]["test"]["frames"]


def test_other_classes_and_too_few_negatives(tmp_path):
    data, neg = make_footage(tmp_path, n=30, negatives=1)
    with pytest.raises(CctvkitError, match="need 3 or more") as e:
        import_run(data, "x", tmp_path / "runs", neg, progress=False, block_size=6)
    assert "plates" in str(e.value)
    (data / "labels" / "frame_5.txt").write_text("2 0.5 0.5 0.1 0.1\n")
    with pytest.raises(CctvkitError, match="class id 2") as e:
        import_run(data, "x", tmp_path / "runs", progress=False, block_size=6)
    assert "frame_5.txt" in str(e.value)
    assert not (tmp_path / "runs" / "x").exists()


def test_import_records_its_own_stage_with_the_declared_outputs(imported):
    from edge.stages import IMPORT

    m, _ = imported
    assert list(m.data["stages"]) == ["import"]  # its own stage, not a stand-in "compose"
    folder = m.run_dir / "import"
    assert set(m.stage("import")["outputs"]) == {p.name for p in folder.iterdir()}
    assert {p.name for p in folder.iterdir()} == {o.name for o in IMPORT.outputs}  # holdout: a test split
    assert m.data["complete"] is False  # train and export are still to come


def test_train_reads_the_imported_data_sets(imported, monkeypatch):
    """train finds detect/ and classify/ through the import stage (edge/stages.py: dataset_stage)."""
    import trainer.yolo.train as yolo_train
    from trainer import pipeline
    from trainer.config import PipelineConfig

    class Reached(Exception):
        pass

    def fake_train_detector(data_yaml, *args, **kwargs):
        raise Reached(str(data_yaml))

    monkeypatch.setattr(yolo_train, "train_detector", fake_train_detector)
    m, _ = imported
    with pytest.raises(Reached) as e:
        pipeline.run_train(m, PipelineConfig.model_validate({"train": {"device": "cpu"}}), progress=False)
    assert Path(str(e.value)) == m.output("import", "detect") / "data.yaml"
    assert not (m.run_dir / "train").exists()
