"""Self-training's relabelling, without a training: how the detector's boxes and the previous labels make
the next round's labels, and the round's data set (composed labels untouched, real frames relabelled)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.types import Detections
from trainer.relabel.selftrain import SelfTrainParams, _round_dataset, real_images, relabel


def dets(*boxes: tuple[float, float, float, float, float]) -> Detections:
    a = np.asarray([b[:4] for b in boxes], np.float32).reshape(-1, 4)
    return Detections(a, np.asarray([b[4] for b in boxes], np.float32), np.zeros(len(a), np.int64))


PERSON = (10.0, 10.0, 30.0, 70.0)
STILL = (100.0, 20.0, 120.0, 80.0)  # someone standing still: the motion finder missed them


def test_union_keeps_a_previous_label_the_detector_does_not_cover_and_adds_what_it_finds():
    # Frame 0: the detector finds the walker and the person standing still; frame 1: only a weak box, over
    # the previous label: not sure enough to be a label, nor evidence against the previous one.
    d = [dets((*PERSON, 0.9), (*STILL, 0.8)), dets((301, 12, 321, 72, 0.15))]
    prior = [np.asarray([PERSON], np.float32), np.asarray([(300, 10, 320, 70)], np.float32)]
    labels, info = relabel(d, prior, SelfTrainParams(rounds=1, track=False))
    assert len(labels[0]) == 2  # the walker once (the detector's box), the still person added
    assert len(labels[1]) == 1 and labels[1][0].tolist() == [300, 10, 320, 70]  # weak box: no label
    assert info["fuse"] == "union" and info["boxes_before"] == 2 and info["boxes_after"] == 3
    assert info["agreement"]["previous_boxes_detector_confirms"] == 0.5


def test_detector_mode_drops_what_the_detector_does_not_see():
    d = [dets((*PERSON, 0.9)), dets()]
    prior = [np.asarray([PERSON, STILL], np.float32), np.asarray([STILL], np.float32)]
    labels, info = relabel(d, prior, SelfTrainParams(rounds=1, fuse="detector", track=False))
    assert [len(b) for b in labels] == [1, 0] and info["fuse"] == "detector"


@pytest.mark.parametrize(("n_found", "expected"), [(1, "union"), (3, "detector")])
def test_auto_unions_when_the_detector_finds_far_fewer_people(n_found, expected):
    boxes = [(10.0 + 40 * k, 10.0, 30.0 + 40 * k, 70.0) for k in range(4)]
    d = [dets(*[(*b, 0.9) for b in boxes[:n_found]])]
    _, info = relabel(d, [np.asarray(boxes, np.float32)], SelfTrainParams(rounds=1, fuse="auto", track=False))
    assert info["fuse"] == expected


def test_dense_footage_is_tracked_and_a_one_frame_flicker_goes():
    walk = [dets((10 + 2 * t, 10, 30 + 2 * t, 70, 0.9)) for t in range(8)]
    walk[4] = dets((18, 10, 38, 70, 0.9), (150, 150, 170, 200, 0.5))  # a flicker, once
    labels, info = relabel(walk, [np.zeros((0, 4), np.float32)] * 8, SelfTrainParams(rounds=1, fuse="detector"))
    assert info["labels"].startswith("tracked") and [len(b) for b in labels] == [1] * 8


def _compose(root: Path) -> Path:
    """A composed data set: one composite, one real pseudo-labelled frame, one hybrid real-labelled frame."""
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            (root / "detect" / kind / split).mkdir(parents=True)
    for name, text in (("c0", "0 0.5 0.5 0.1 0.2\n"), ("r0", "0 0.2 0.2 0.1 0.2\n"), ("real-label__x", "0 .1 .1 .1 .1\n")):
        (root / "detect" / "images" / "train" / f"{name}.jpg").write_bytes(b"jpg")
        (root / "detect" / "labels" / "train" / f"{name}.txt").write_text(text)
    records = [{"image": "detect/images/train/c0.jpg", "label": "detect/labels/train/c0.txt", "source": "composed"},
               {"image": "detect/images/train/r0.jpg", "label": "detect/labels/train/r0.txt", "source": "real",
                "frame": 7, "frame_file": "frames/images/f000007.jpg"}]
    (root / "compose.json").write_text(json.dumps({"images": records}))
    return root


def test_the_round_data_set_relabels_only_the_pseudo_labelled_frames(tmp_path):
    compose = _compose(tmp_path / "compose")
    real = real_images(compose)
    assert [(r.stem, r.frame) for r in real] == [("f000007", 7)]
    yaml = _round_dataset(compose / "detect", tmp_path / "round", {real[0].label: "0 0.7 0.7 0.1 0.1\n"})
    labels = yaml.parent / "labels" / "train"
    assert (labels / "r0.txt").read_text() == "0 0.7 0.7 0.1 0.1\n"
    assert (labels / "c0.txt").read_text() == "0 0.5 0.5 0.1 0.2\n"  # a composite's exact label stays
    assert (labels / "real-label__x.txt").read_text() == "0 .1 .1 .1 .1\n"  # a real label stays
    assert (yaml.parent / "images" / "train" / "c0.jpg").resolve() == (compose / "detect/images/train/c0.jpg").resolve()
    assert real_images(tmp_path / "imported") == []  # an imported (real-label) data set: nothing to relabel


def test_no_rounds_is_the_first_detector_untouched(tmp_path):
    from types import SimpleNamespace

    from trainer.relabel.selftrain import self_train

    compose = _compose(tmp_path / "compose")  # real frames there, but rounds: 0 (the default)
    first = SimpleNamespace(weights=tmp_path / "detector.pt", epochs=4, seconds=1.0, metrics={"map50": 0.5})

    def never(*a):
        raise AssertionError("rounds: 0 trains nothing more")

    result, records = self_train(first, compose, tmp_path, SelfTrainParams(), never, imgsz=64, epochs=4,
                                 device="cpu")
    assert result is first and records == [{"round": 0, "epochs": 4, "seconds": 1.0,
                                            "val_on_pseudo_labels": {"map50": 0.5}}]
    assert not (tmp_path / "self-training").exists()
