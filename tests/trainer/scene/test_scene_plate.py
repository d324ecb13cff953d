"""The background plate is the empty scene, even where people walked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import synthetic_video as synth

from trainer.scene.frames import spread
from trainer.scene.plate import build_plate, median_plate


def _track_mask() -> np.ndarray:
    """Every pixel any figure covered at some time."""
    m = np.zeros((synth.H, synth.W), bool)
    for t in range(synth.N_FRAMES):
        for x1, y1, x2, y2 in synth.true_boxes(t).astype(int):
            m[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return m


def test_plate_equals_the_background_where_figures_moved(synth_video: Path):
    plate = build_plate(synth_video, spread(0, synth.N_FRAMES, 40), progress=False)
    truth = synth.background().astype(np.int16)
    # Tolerances allow for MJPG: the plate went through the codec, the truth did not.
    track = _track_mask()
    assert track.mean() > 0.1, "the figures must cover a real part of the frame for this test to mean anything"
    diff = np.abs(plate.image.astype(np.int16) - truth).max(axis=-1)
    assert np.median(diff[track]) <= 8, "plate still shows the walkers"
    assert np.percentile(diff[track], 95) <= 30
    # And the frames themselves really differ from the background there (or the test proves nothing).
    frame = synth.frame_at(30, synth.background()).astype(np.int16)
    boxes = synth.true_boxes(30).astype(int)
    x1, y1, x2, y2 = boxes[0]
    assert np.abs(frame[y1:y2, x1:x2] - truth[y1:y2, x1:x2]).max(axis=-1).mean() > 30
    assert plate.noise.shape == plate.image.shape[:2] and plate.n_frames == 40


def test_median_plate_ignores_a_minority_of_outliers():
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    frames = [bg.copy() for _ in range(9)]
    for k in range(4):  # a bright square visits 4 of 9 frames
        frames[k][4:10, 5:12] = 255
    plate = median_plate(frames, rows_per_chunk=5)
    assert np.array_equal(plate.image, bg)
