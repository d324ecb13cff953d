"""One split for every arm: time blocks with guards (trainer import's rules), no test frame trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from experiment_footage import make_footage

from edge.formats.yolo import list_images
from trainer.experiment.arms import write_frame_folder
from trainer.experiment.config import SplitParams
from trainer.experiment.split import (
    LeakageError,
    assert_no_leakage,
    held_out_hashes,
    make_split,
    pick_evenly,
    write_split_json,
    write_test_set,
)
from trainer.importer import assign

PARAMS = SplitParams(block_size=10, guard=2, val_fraction=0.2, test_fraction=0.2)


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_footage(tmp_path_factory.mktemp("footage"), n=100, negatives=20)


def test_split_is_import_rule_without_leakage(footage, tmp_path):
    data, plates = footage
    split = make_split(data, plates, PARAMS)
    expected, _ = assign(100, 10, 0.2, 0.2, 2)
    assert split.splits == expected  # trainer import's own rule, so the `real` arm gets the same frames
    names = {s: set(split.names(s)) for s in ("train", "val", "test")}
    assert not names["test"] & (names["train"] | names["val"]) and not names["train"] & names["val"]
    assert len(names["test"]) == 20 - 2 * 2  # two test blocks, each after a block of another split
    # The test set folder is exactly the test frames, with their labels.
    info = write_test_set(split, tmp_path / "test")
    write_split_json(split, tmp_path / "split.json", info)
    images = list_images(tmp_path / "test" / "images")
    assert {p.name.replace("frame_", "images/frame_", 1) for p in images} == names["test"]
    assert all((tmp_path / "test" / "labels" / f"{p.stem}.txt").is_file() for p in images)
    assert info["frames"] == 16 and info["boxes"] == 3 * 16 and info["negatives"] == len(split.negatives_of("test"))
    doc = json.loads((tmp_path / "split.json").read_text())
    assert set(doc["splits"]["test"]) == names["test"] and doc["params"]["guard"] == 2
    # Splitting again gives the same test frames: every arm is scored on one set.
    assert make_split(data, plates, PARAMS).names("test") == split.names("test")


def test_frame_folder_has_no_test_frame_and_no_label(footage, tmp_path):
    data, plates = footage
    split = make_split(data, plates, PARAMS)
    write_test_set(split, tmp_path / "test")
    n = write_frame_folder(split, tmp_path / "frames")
    files = sorted((tmp_path / "frames").iterdir())
    assert n == len(files) == len(split.of("train", "val"))
    assert all(p.suffix == ".jpg" for p in files)  # images only: the label-free arm gets no labels
    # Name order is time order, whatever the source names (frame_2 before frame_10).
    assert [p.name.split("__", 1)[1] for p in files] == [f.image.name for f in split.of("train", "val")]
    hashes = held_out_hashes(tmp_path / "test", split)
    assert assert_no_leakage("label-free", hashes, files, split, split.names("train", "val")) == n


def test_leakage_is_caught(footage, tmp_path):
    data, plates = footage
    split = make_split(data, plates, PARAMS)
    write_test_set(split, tmp_path / "test")
    hashes = held_out_hashes(tmp_path / "test", split)
    test_frame = split.of("test")[0]
    train = tmp_path / "arm" / "compose" / "detect" / "images" / "train"
    train.mkdir(parents=True)
    shutil.copyfile(test_frame.image, train / "copied.jpg")  # same bytes, another file
    with pytest.raises(LeakageError, match="trains on test frame"):
        assert_no_leakage("x", hashes, [train / "copied.jpg"], split)
    (train / "copied.jpg").unlink()
    (train / "linked.jpg").symlink_to(test_frame.image)  # a link to the test frame itself
    with pytest.raises(LeakageError):
        assert_no_leakage("x", {}, [train / "linked.jpg"], split)
    with pytest.raises(LeakageError, match=split.rel(test_frame)):  # by source name
        assert_no_leakage("x", hashes, [], split, [split.rel(test_frame)])


@pytest.mark.parametrize(("n", "percent", "k"), [(60, 10, 6), (60, 50, 30), (60, 100, 60), (7, 1, 1), (3, 50, 2)])
def test_pick_evenly(n, percent, k):
    items = list(range(n))
    chosen = pick_evenly(items, percent)
    assert len(chosen) == k and len(set(chosen)) == k and chosen == sorted(chosen)
    if k > 1:  # evenly spread: gaps differ by at most one frame, the ends are covered
        gaps = [b - a for a, b in zip(chosen, chosen[1:], strict=False)]
        assert max(gaps) - min(gaps) <= 1
        assert chosen[0] < n / k and chosen[-1] >= n - n / k
