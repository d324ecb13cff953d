"""The background plate is the empty scene, even where people walked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import synthetic_video as synth

from edge.sampling import spread_indices
from trainer.scene.plate import build_plate, median_plate, motion_mask


def _track_mask() -> np.ndarray:
    """Every pixel any figure covered at some time."""
    m = np.zeros((synth.H, synth.W), bool)
    for t in range(synth.N_FRAMES):
        for x1, y1, x2, y2 in synth.true_boxes(t).astype(int):
            m[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return m


def test_plate_equals_the_background_where_figures_moved(synth_video: Path):
    plate = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 40), progress=False)
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


def _crowd_frames(n: int = 60, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """A textured scene whose middle band people cover in ~70% of the frames: (empty scene, frames, the
    same frames a moment later with everyone moved on 6 px, band). Every person has their own colour, as
    clothes do."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:160]
    empty = np.stack([(xx * 1.5) % 256, (yy * 2) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    frames, later, cover = [], [], np.zeros(empty.shape[:2])
    for _ in range(n):
        people = [(int(rng.integers(-10, 160)), int(rng.integers(20, 70)), rng.integers(0, 256, 3)) for _ in range(25)]
        pair = []
        for dx in (0, 6):
            f = empty.copy()
            for x, y, colour in people:
                f[y : y + 30, max(x + dx, 0) : x + dx + 14] = colour
            pair.append(f)
        frames.append(pair[0])
        later.append(pair[1])
        cover += np.any(pair[0] != empty, axis=-1)
    return empty, frames, later, cover / n > 0.6


def _error(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(image.astype(np.int16) - truth.astype(np.int16)).max(axis=-1)


def test_the_clean_plate_recovers_a_scene_that_never_clears_where_the_median_shows_clothes():
    empty, frames, later, band = _crowd_frames()
    assert band.mean() > 0.2, "the crowd must cover a real part of the frame"
    plain = median_plate(frames, method="median")
    clean = median_plate(frames, method="clean", later=later)
    assert np.median(_error(plain.image, empty)[band]) > 15, "the plain median must fail here, or this proves nothing"
    assert np.median(_error(clean.image, empty)[band]) == 0
    assert np.percentile(_error(clean.image, empty)[band], 75) <= 12
    # Where people never came, the clean plate is the plain median, value for value; so is a clean plate
    # without partner frames (nothing known to move), and the noise map is the same spread either way.
    quiet = ~np.any(np.stack(frames) != empty, axis=-1).any(axis=0)
    assert quiet.mean() > 0.2 and np.array_equal(clean.image[quiet], plain.image[quiet])
    assert np.array_equal(median_plate(frames, method="clean").image, plain.image)
    assert np.array_equal(clean.noise, plain.noise)


def test_a_camera_exposure_change_between_a_frame_and_its_partner_is_not_movement():
    """A thermal camera's gain control brightens whole frames by 30%: the pair differs everywhere by up to
    60 grey levels, but nothing moved, so nothing is left out."""
    rng = np.random.default_rng(3)
    bg = rng.integers(40, 180, (40, 50, 3)).astype(np.float32)
    frames = [np.clip(bg * g, 0, 255).astype(np.uint8) for g in rng.uniform(0.8, 1.2, 21)]
    later = [np.clip(f * 1.3, 0, 255).astype(np.uint8) for f in frames]
    assert not motion_mask(frames[0], later[0]).any()
    clean = median_plate(frames, method="clean", later=later)
    assert np.array_equal(clean.image, median_plate(frames, method="median").image) and clean.unseen == 0.0


def test_pixels_never_seen_without_movement_are_filled_from_around_them_and_counted():
    empty, _, _, _ = _crowd_frames(n=1)
    frames = [empty.copy() for _ in range(20)]
    later = [empty.copy() for _ in range(20)]
    rng = np.random.default_rng(4)
    for k in range(20):  # someone standing there in every frame (another coat each time), stepping 3 px
        x, y = 60 + int(rng.integers(-10, 11)), 40 + int(rng.integers(-10, 11))
        coat = 10 + k if k % 2 else 245 - k  # dark and light coats, all unlike the floor
        frames[k][y : y + 60, x : x + 40] = coat
        later[k][y + 3 : y + 63, x + 3 : x + 43] = coat
    plate = median_plate(frames, method="clean", later=later)
    # The body's middle never changes within a pair, and its outline moves: the mask's filling covers it.
    # Always covered: rows 50-90, columns 70-90.
    assert 40 * 20 / (120 * 160) <= plate.unseen <= 80 * 60 / (120 * 160)
    # Filled from around the hole (the scene is smooth there), not from any frame's values.
    err = np.median(_error(plate.image[50:90, 70:90], empty[50:90, 70:90]))
    plain_err = np.median(_error(median_plate(frames, method="median").image[50:90, 70:90], empty[50:90, 70:90]))
    assert err <= 20 and plain_err >= 3 * err, (err, plain_err)


def test_a_motion_mask_covers_a_moving_body_and_a_cut_gives_none():
    rng = np.random.default_rng(2)
    scene = rng.integers(0, 60, (200, 200, 3), dtype=np.uint8)
    coat = rng.integers(120, 250, (120, 40, 3), dtype=np.uint8)  # folds and shading: a texture
    coat = cv2.GaussianBlur(coat, (5, 5), 0)
    a, b = scene.copy(), scene.copy()
    a[40:160, 50:90] = coat
    b[40:160, 58:98] = coat  # moved 8 px
    m = motion_mask(a, b)
    assert m is not None and m[45:155, 52:96].mean() > 0.95  # the whole body, not only its outline
    assert m[:, 150:].mean() < 0.01
    assert motion_mask(scene, 255 - scene) is None


def test_build_plates_reads_each_samples_partner_and_records_the_method(synth_video: Path):
    clean = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 40), progress=False, method="clean", gap=2)
    plain = build_plate(synth_video, spread_indices(0, synth.N_FRAMES, 40), progress=False, method="median")
    truth = synth.background().astype(np.int16)
    track = _track_mask()
    assert np.median(_error(clean.image, truth)[track]) <= np.median(_error(plain.image, truth)[track])
    assert clean.unseen == 0.0 and clean.n_frames == plain.n_frames == 40
