"""Finding people in single frames: boxes against the known figures, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import synthetic_video as synth

from edge.sampling import spread_indices
from trainer.scene.frames import iter_frames
from trainer.scene.params import SceneParams
from trainer.scene.people import PersonFinder
from trainer.scene.perspective import Perspective
from trainer.scene.plate import build_plate


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _match(found: np.ndarray, truth: np.ndarray) -> list[float]:
    """Best IoU of each true box among the found ones."""
    return [max((_iou(t, f) for f in found), default=0.0) for t in truth]


def test_people_are_found_with_tight_boxes(synth_video: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 30), progress=False)
    frames = [5, 20, 35, 50]
    for perspective in (None, Perspective(synth.A, synth.B)):
        finder = PersonFinder(plate, SceneParams(), perspective)
        ious, extra = [], 0
        for i, frame in iter_frames(synth_video, frames):
            people = finder.find(frame, i)
            assert all(p.frame == i for p in people)
            found = np.array([p.box for p in people]).reshape(-1, 4)
            best = _match(found, synth.true_boxes(i))
            ious.extend(best)
            extra += max(0, len(people) - len(synth.WALKERS))
            for p in people:
                x1, y1, x2, y2 = p.box.astype(int)
                assert p.mask.shape == (y2 - y1, x2 - x1) and p.mask.dtype == bool and p.mask.any()
                assert p.foot == ((x1 + x2) / 2, y2)
                assert 0 < p.score <= 1 and p.source in ("hog+fg", "fg")
        assert min(ious) >= 0.6, f"perspective={perspective}: IoUs {np.round(ious, 2)}"
        assert np.mean(ious) >= 0.75
        assert extra == 0, "boxes on the empty background"


def test_finder_is_deterministic(synth_video: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 20), progress=False)
    frame = dict(iter_frames(synth_video, [33]))[33]
    a = PersonFinder(plate, SceneParams()).find(frame)
    b = PersonFinder(plate, SceneParams()).find(frame.copy())
    assert len(a) == len(b) > 0
    for p, q in zip(a, b, strict=True):
        assert np.array_equal(p.box, q.box) and np.array_equal(p.mask, q.mask) and p.score == q.score


def test_nothing_is_found_in_the_empty_scene(synth_video: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 30), progress=False)
    empty = synth.background()
    assert PersonFinder(plate, SceneParams(), Perspective(synth.A, synth.B)).find(empty) == []


def test_light_change_and_a_vehicle_are_not_people(synth_video: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 30), progress=False)
    finder = PersonFinder(plate, SceneParams(), Perspective(synth.A, synth.B))
    bg = synth.background()
    # A cloud passes: everything 25% brighter, or 30% darker.
    for gain in (1.25, 0.7):
        lit = np.clip(bg.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        assert finder.fg.mask(lit).mean() < 0.01 * 255, f"gain {gain}: the light change reads as motion"
        assert finder.find(lit) == [], f"gain {gain}"
    # A dark van, person-high but three people wide.
    van = bg.copy()
    h = synth.height_at(210)
    van[int(210 - 0.8 * h) : 210, 60 : 60 + int(3 * 0.38 * h)] = (40, 40, 45)
    assert finder.find(van) == []
    # ...while one dark person-shaped figure at the same spot is found (the test can fail).
    person = bg.copy()
    synth.draw_figure(person, (80.0, 210.0), (40, 40, 45), 0)
    assert len(finder.find(person)) == 1
