"""The scene stage judges its own evidence (trainer/scene/evidence.py): a crowd that never clears stops the
run with one line saying what is missing and the fix, or goes on marked low-confidence when told to."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CctvkitError
from trainer.scene import evidence as ev
from trainer.scene.params import SceneParams
from trainer.scene.perspective import Perspective
from trainer.scene.run import build_scene

PERSP = Perspective(a=0.25, b=10.0)  # 60 px tall at row 200, 110 px at row 400


def boxes_at(rows: list[float], scale: float) -> list[np.ndarray]:
    out = []
    for r in rows:
        h = scale * float(PERSP.height_at(r))
        out.append(np.array([[100, r - h, 100 + 0.4 * h, r]], np.float32))
    return out


def test_perspective_check_agrees_with_whole_people_and_catches_a_fifth_of_their_height():
    rows = list(np.linspace(200, 500, 10))
    good = ev.check_perspective(boxes_at(rows, 1.1), PERSP, "HOG")
    assert good.ok is True and abs(good.value - 1.1) < 0.01
    crowd = ev.check_perspective(boxes_at(rows, 5.0), PERSP, "HOG")  # the concourse: 175 px people, 35 px model
    assert crowd.ok is False and crowd.value > 4
    few = ev.check_perspective(boxes_at(rows[:3], 5.0), PERSP, "HOG")
    assert few.ok is None and "unchecked" in few.detail


def test_whole_person_share_is_judged_in_crowds_only():
    fragments = {"hog+fg": 50, "fg": 450}
    assert ev.check_whole_share(fragments, per_frame=84).ok is False
    assert ev.check_whole_share(fragments, per_frame=3).ok is None  # a quiet scene of stylised people
    assert ev.check_whole_share({"hog+fg": 400, "fg": 100}, per_frame=84).ok is True


def test_counts_and_ghosts_and_the_verdict():
    whole = [np.zeros((3, 4), np.float32)] * 10
    assert ev.check_counts(5.5, whole, "HOG").ok is True
    assert ev.check_counts(40.0, whole, "HOG").ok is False
    assert ev.check_counts(40.0, [np.zeros((0, 4))] * 10, "HOG").ok is None
    ghosts = ev.check_ghosts([0, 7], "HOG")
    doc = ev.judge([ghosts, ev.check_counts(5.5, whole, "HOG")])
    assert doc["verdict"] == "weak" and doc["failed"] == ["plate_ghosts"]
    what, fix = ev.weak_message(doc, teacher=False)
    assert "plate_ghosts 7.0" in what and "--teacher" in fix and "--accept-weak-scene" in fix
    assert "\n" not in what + fix


def test_the_share_of_a_plate_never_seen_empty_is_judged_for_the_clean_plate_only():
    class P:
        def __init__(self, unseen: float):
            self.unseen = unseen

    assert ev.check_unseen([P(0.0), P(0.01)], "clean").ok is True
    bad = ev.check_unseen([P(0.0), P(0.18)], "clean")
    assert bad.ok is False and bad.value == 0.18 and "[0.0, 0.18]" in bad.detail
    assert ev.check_unseen([P(0.3)], "median").ok is None


def crowd_video(vtest: Path, out: Path, n_frames: int = 90) -> Path:
    """vtest's plaza with a crowd that never leaves: ~30 real people (HOG's finds on vtest frames, cut
    out as rectangles) standing in rows, swaying a pixel or two, while vtest's own walkers pass by."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    while len(frames) < n_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    crops = []
    for f in frames[::15]:
        rects, w = hog.detectMultiScale(f, winStride=(8, 8), scale=1.05)
        crops += [f[y:y + h, x:x + wd].copy() for (x, y, wd, h), s in zip(rects, np.ravel(w), strict=True) if s > 0.8]
    assert len(crops) >= 5, "HOG finds people in vtest"
    rng = np.random.default_rng(0)
    spots = [(int(x), int(y)) for y in (200, 300, 400, 470) for x in np.linspace(20, 640, 8)]
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for f in frames:
        img = f.copy()
        for k, (x, y) in enumerate(spots):
            c = crops[k % len(crops)]
            s = (0.8 + 0.6 * (y - 200) / 270) * 128 / c.shape[0]
            c = cv2.resize(c, None, fx=s, fy=s)
            dx, dy = rng.integers(-2, 3, 2)
            y0, x0 = max(0, y + dy - c.shape[0]), max(0, min(768 - c.shape[1], x + dx))
            img[y0:y0 + c.shape[0], x0:x0 + c.shape[1]] = c[: 576 - y0, : 768 - x0]
        vw.write(img)
    vw.release()
    return out


@pytest.mark.real
def test_a_crowd_that_never_clears_stops_the_scene_or_is_marked_low_confidence(vtest_video, tmp_path):
    video = crowd_video(vtest_video, tmp_path / "crowd.avi")
    params = {"plate_frames": 30, "calib_frames": 40, "scan_stride": 4, "train_frames": 20, "holdout_frames": 5,
              "segments": False, "evidence_frames": 6}
    with pytest.raises(CctvkitError) as e:
        build_scene(video, tmp_path / "scene", SceneParams(**params), progress=False)
    msg = str(e.value)
    assert "the scene's evidence is weak" in msg and "plate_ghosts" in msg and "--teacher" in msg
    assert "\n" not in msg and str(video) in msg
    summary = build_scene(video, tmp_path / "scene2", SceneParams(**params, accept_weak_evidence=True),
                          progress=False)
    assert summary["evidence"]["low_confidence"] is True and "plate_ghosts" in summary["evidence"]["failed"]
