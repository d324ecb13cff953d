"""Hard negatives: a van the finder turns down becomes a distractor cutout, which compose pastes back at its
place with no label; a blob touching a found person is not kept."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import synthetic_video as synth

from edge.sampling import spread_indices
from trainer.compose import ComposeParams, compose_dataset
from trainer.scene.distractors import DistractorBank, load_distractors, paste
from trainer.scene.params import SceneParams
from trainer.scene.people import PersonFinder
from trainer.scene.perspective import Perspective
from trainer.scene.plate import build_plate

sys.path.insert(0, str(Path(__file__).parents[1] / "compose"))
from compose_scene_factory import BASE, make_scene  # noqa: E402

VAN = (60, 210)  # left edge, bottom row


def _van_frame() -> np.ndarray:
    van = synth.background()
    h = synth.height_at(VAN[1])
    van[int(VAN[1] - 0.8 * h): VAN[1], VAN[0]: VAN[0] + int(3 * 0.38 * h)] = (40, 40, 45)
    return van


def test_the_finder_turns_a_van_down_and_the_bank_keeps_it(synth_video: Path, tmp_path: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 30), progress=False)
    finder = PersonFinder(plate, SceneParams(), Perspective(synth.A, synth.B))
    frame = _van_frame()
    assert finder.find(frame) == []
    assert len(finder.rejected) == 1
    box, why, mask = finder.rejected[0]
    assert "HOG sees nobody" in why and abs(box[0] - VAN[0]) <= 3 and abs(box[3] - VAN[1]) <= 3
    assert mask.shape == (int(box[3] - box[1]), int(box[2] - box[0])) and mask.mean() > 0.8

    bank = DistractorBank(limit=5)
    bank.see(3, frame, finder.rejected, np.zeros((0, 4)))
    bank.see(4, frame, finder.rejected, np.array([[box[0] + 5, box[1], box[0] + 20, box[3]]]))  # a person there
    summary = bank.save(tmp_path)
    assert summary["kept"] == 1 and summary["touching_a_person"] == 1
    (d,) = load_distractors(tmp_path)
    assert d["frame"] == 3 and d["box"] == [int(v) for v in box] and d["rgba"].shape[2] == 4
    # Pasted back at its place on the empty background, it is the van again.
    back = paste(synth.background(), d)
    x1, y1, x2, y2 = d["box"]
    inner = (slice(y1 + 3, y2 - 3), slice(x1 + 3, x2 - 3))
    assert np.abs(back[inner].astype(int) - frame[inner].astype(int)).max() <= 2
    assert load_distractors(tmp_path / "none") == []


def test_compose_pastes_distractors_without_labels(tmp_path: Path):
    scene = make_scene(tmp_path / "scene")
    plain = tmp_path / "plain"
    compose_dataset(scene, plain, ComposeParams(**BASE), progress=False)
    with_d = tmp_path / "with-scene"
    shutil.copytree(scene, with_d)
    rgba = np.dstack([np.full((30, 50, 3), (0, 0, 255), np.uint8), np.full((30, 50), 255, np.uint8)])
    (with_d / "distractors").mkdir()
    cv2.imwrite(str(with_d / "distractors" / "00001.png"), rgba)
    (with_d / "distractors.json").write_text(json.dumps([{"file": "distractors/00001.png", "frame": 0,
                                                           "box": [5, 5, 55, 35], "why": "test"}]))
    out = tmp_path / "with"
    summary = compose_dataset(with_d, out, ComposeParams(**BASE, distractor_prob=0.5), progress=False)
    doc, ref = (json.loads((d / "compose.json").read_text()) for d in (out, plain))
    hit = [r for r in doc["images"] if r.get("distractor")]
    assert 0 < len(hit) == summary["distractors_pasted"] < len(doc["images"])
    assert {r["source"] for r in hit} <= {"composed", "negative"}
    for r, q in zip(doc["images"], ref["images"], strict=True):
        # The same persons and labels as without distractors: its own random stream, never a label.
        assert (out / r["label"]).read_text() == (plain / q["label"]).read_text()
        if r.get("distractor") and r["source"] == "negative":
            img = cv2.imread(str(out / r["image"]))
            assert img[10:30, 10:50, 2].mean() > 180 and img[10:30, 10:50, :2].mean() < 80  # red, at its place
