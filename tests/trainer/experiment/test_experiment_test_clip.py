"""test_data: the test set is every frame of ANOTHER clip of the camera; data is split into train/val only,
and the leakage check still finds a test-clip frame in an arm's training data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from experiment_footage import make_footage

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from trainer.config import PipelineConfig
from trainer.experiment import run as run_mod
from trainer.experiment.arms import prepare_real, write_frame_folder
from trainer.experiment.config import SplitParams, load_experiment_config
from trainer.experiment.split import (
    LeakageError,
    assert_no_leakage,
    held_out_hashes,
    make_split,
    write_split_json,
    write_test_set,
)
from trainer.importer import assign

PARAMS = SplitParams(block_size=10, guard=2, val_fraction=0.2)
N_TEST = 40


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(data, plates) of clip 0 for training, (test_data, test_plates) of clip 1."""
    root = tmp_path_factory.mktemp("clips")
    return (*make_footage(root, n=100, negatives=20), *make_footage(root, n=N_TEST, negatives=6, clip=1))


def load(tmp_path: Path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_experiment_config(path)


@pytest.mark.parametrize(("text", "key", "fix"), [
    ("test_data: walk3\nsplit: {test_fraction: 0.2}\n", "key 'split.test_fraction'", "remove split.test_fraction"),
    ("test_data: walk3\nsplit: {block_size: 5, test_fraction: 0.0}\n", "key 'split.test_fraction'", "remove"),
    ("test_negatives: plates\n", "key 'test_negatives'", "add test_data"),
    ("split: {test_fraction: 0}\n", "key 'split.test_fraction'", "add test_data"),
])
def test_config_errors(tmp_path, text, key, fix):
    with pytest.raises(CctvkitError) as e:
        load(tmp_path, "name: t\ndata: walk1\n" + text)
    assert key in str(e.value) and fix in str(e.value) and "exp.yaml" in str(e.value)
    assert "\n" not in str(e.value)


def test_config_forces_test_fraction_zero(tmp_path):
    cfg = load(tmp_path, "name: t\ndata: walk1\ntest_data: walk3\ntest_negatives: bg\nsplit: {block_size: 5}\n")
    assert cfg.split.test_fraction == 0 and cfg.split.val_fraction == 0.2
    assert cfg.test_data == str(Path.cwd() / "walk3") and cfg.test_negatives == str(Path.cwd() / "bg")
    assert load(tmp_path, "name: t\ndata: walk1\n").split.test_fraction == 0.2  # unchanged without test_data


def test_split_with_test_clip(clips, tmp_path):
    data, plates, test_data, test_plates = clips
    split = make_split(data, plates, PARAMS, test_data, test_plates)
    assert split.params.test_fraction == 0
    assert split.splits == assign(100, 10, 0.2, 0.0, 2)[0] and "test" not in split.splits  # train/val only
    assert split.of("test") == [] and set(split.neg_splits) <= {"train", "val"}
    info = write_test_set(split, tmp_path / "test")
    write_split_json(split, tmp_path / "split.json", info)
    # The test folder holds every frame of the test clip, with its label, and its negatives.
    images = list_images(tmp_path / "test" / "images")
    assert sorted(p.name for p in images) == sorted(p.name for p in list_images(test_data / "images"))
    assert len(images) == N_TEST == info["frames"]
    for p in images:
        label = tmp_path / "test" / "labels" / f"{p.stem}.txt"
        assert label.read_bytes() == (test_data / "labels" / label.name).read_bytes()
        assert os.path.samefile(p, test_data / "images" / p.name)  # hardlinks, as before
    assert info["boxes"] == sum(f.boxes for f in split.held_out()) > 0 and info["negatives"] == 6
    assert len(list_images(tmp_path / "test" / "negatives")) == 6
    # No train/val frame is a test frame (the clips share no bytes).
    test_hashes = {sha256_file(p) for p in images}
    assert not test_hashes & {sha256_file(f.image) for f in split.of("train", "val")}
    doc = json.loads((tmp_path / "split.json").read_text())
    assert doc["data"] == str(data) and doc["test_data"] == str(test_data)
    assert doc["test_negatives"] == str(test_plates) and doc["params"]["test_fraction"] == 0
    assert len(doc["splits"]["test"]) == N_TEST and doc["counts"]["test"]["frames"] == N_TEST
    assert all(n.startswith("images/frame_") for n in doc["splits"]["test"])
    assert len(doc["negative_splits"]["test"]) == 6
    assert info["source"] == str(test_data) and info["training_data"] == str(data) and info["other_clip"]


def test_real_arm_imports_train_val_only(clips, tmp_path):
    data, plates, test_data, test_plates = clips
    split = make_split(data, plates, PARAMS, test_data, test_plates)
    cfg = PipelineConfig.model_validate({"compose": {"cls_size": 32}})
    arm = prepare_real(tmp_path / "arms" / "real", split, cfg, progress=False)  # checks import.json itself
    doc = json.loads((arm.manifest.run_dir / "import" / "import.json").read_text())
    assert doc["splits"]["train"] == split.names("train") and "test" not in doc["splits"]
    assert arm.manifest.stage("import")["params"]["test_fraction"] == 0


def test_leakage_of_a_test_clip_frame_is_caught(clips, tmp_path):
    data, plates, test_data, test_plates = clips
    split = make_split(data, plates, PARAMS, test_data, test_plates)
    write_test_set(split, tmp_path / "test")
    hashes = held_out_hashes(tmp_path / "test", split)
    assert len(hashes) == N_TEST + 6  # nothing subtracted: no data frame has a test frame's bytes
    frames = tmp_path / "frames"
    n = write_frame_folder(split, frames)  # the label-free arms' input passes
    assert assert_no_leakage("label-free", hashes, list_images(frames), split, split.names("train", "val")) == n
    train = tmp_path / "arm" / "compose" / "detect" / "images" / "train"
    train.mkdir(parents=True)
    frame = split.held_out()[3].image
    shutil.copyfile(frame, train / "copied.jpg")  # the test clip's bytes, another file
    with pytest.raises(LeakageError, match=f"trains on test frame {frame.name}"):
        assert_no_leakage("hybrid-10", hashes, [train / "copied.jpg"], split)
    os.link(frame, train / "linked.jpg")  # the test clip's file itself
    with pytest.raises(LeakageError):
        assert_no_leakage("hybrid-10", {}, [train / "linked.jpg"], split)
    shutil.copyfile(test_plates / "plate_0.png", train / "plate.png")  # a test negative
    with pytest.raises(LeakageError):
        assert_no_leakage("x", hashes, [train / "plate.png"], split)


def test_test_clip_must_be_another_clip(clips, tmp_path):
    data, plates, test_data, _ = clips
    with pytest.raises(CctvkitError, match="same folder"):
        make_split(data, plates, PARAMS, data)
    shutil.copytree(data, tmp_path / "copy")
    with pytest.raises(CctvkitError, match="another clip"):
        make_split(data, plates, PARAMS, tmp_path / "copy")
    with pytest.raises(CctvkitError, match="another clip"):  # test negatives = the training negatives
        make_split(data, plates, PARAMS, test_data, plates)
    with pytest.raises(CctvkitError, match="test_data folder not found"):
        make_split(data, plates, PARAMS, tmp_path / "nothing")


def test_experiment_report_names_both_clips(clips, tmp_path, monkeypatch):
    data, plates, test_data, test_plates = clips
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(f"name: c\ndata: {data}\nnegatives: {plates}\ntest_data: {test_data}\n"
                        f"test_negatives: {test_plates}\nruns_dir: {tmp_path / 'runs'}\nbudget: cpu\n"
                        "split: {block_size: 10, guard: 2}\narms: [label-free]\n")

    def broken(arm, *a, **kw):
        raise CctvkitError("stopped here", data, "this test runs no arm")

    monkeypatch.setattr(run_mod, "prepare_arm", broken)
    doc = run_mod.run_experiment(load_experiment_config(cfg_path), progress=False)
    exp = tmp_path / "runs" / "c"
    assert doc["test_data"] == str(test_data) and doc["test_set"]["frames"] == N_TEST
    assert len(list_images(exp / "test" / "images")) == N_TEST
    md = (exp / "experiment.md").read_text()
    assert f"**{N_TEST} frames**" in md and f"from `{test_data}`, a different clip than the training data" in md
    assert f"`{data}`" in md and "6 person-free frames" in md
    split = json.loads((exp / "split.json").read_text())
    assert split["data"] == str(data) and split["test_data"] == str(test_data)
    assert {b["split"] for b in split["blocks"]} == {"train", "val"}
