"""Scene segments: a sequence whose empty scene changes gets one plate per stretch, found over the training
part only; a steady scene keeps one plate; compose draws from every segment's plate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_video as synth

import trainer.scene.plate as plate_mod
import trainer.scene.segments as seg_mod
from edge.sampling import spread_indices
from trainer.scene.frames import open_video
from trainer.scene.params import SceneParams
from trainer.scene.plate import build_plates
from trainer.scene.run import build_scene, split_video
from trainer.scene.segments import closest_plate, find_segments

N = 200
CUT = 100  # background A before, B after
HOLD = 160  # with holdout_fraction 0.2: frames 160.. are held out, and get a third background C
PARAMS = {"segment_samples": 160, "segment_window": 6, "segment_min_frames": 30, "plate_frames": 20,
          "calib_frames": 30, "scan_stride": 4, "train_frames": 20, "holdout_frames": 8,
          "hog": False}  # HOG costs ~0.1 s a frame and is not what these tests are about
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _backgrounds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = synth.background()
    b = (a.astype(np.float32) * 0.7).astype(np.uint8)  # dusk: darker everywhere (a gain, not a change) ...
    b[:, : synth.W // 2] = 255 - b[:, : synth.W // 2]  # ... and the left half of the view is another scene
    c = np.full_like(a, 230)  # the held-out part: a scene no plate may show
    cv2.rectangle(c, (150, 60), (300, 200), (20, 20, 20), -1)
    return a, b, c


def _write(folder: Path, backgrounds: list[np.ndarray], bounds: list[int]) -> Path:
    folder.mkdir(parents=True)
    for t in range(N):
        k = sum(t >= b for b in bounds)
        # Walkers keep crossing: the plates must forget them.
        cv2.imwrite(str(folder / f"f{t}.jpg"), synth.frame_at(t % synth.N_FRAMES, backgrounds[k]))
    return folder


@pytest.fixture(scope="module")
def changing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    a, b, c = _backgrounds()
    return _write(tmp_path_factory.mktemp("changing") / "frames", [a, b, c], [CUT, HOLD])


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("steady") / "frames", [synth.background()], [])


@pytest.fixture(scope="module")
def changing_scene(changing: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[int]]:
    """(scene folder, summary, every frame index the segment finder and the plates read)."""
    read: list[int] = []

    def spy(real):
        def wrapped(video, indices):
            indices = list(indices)
            read.extend(indices)
            return real(video, indices)
        return wrapped

    out = tmp_path_factory.mktemp("changing_scene") / "scene"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(seg_mod, "iter_frames", spy(seg_mod.iter_frames))
        mp.setattr(plate_mod, "iter_frames", spy(plate_mod.iter_frames))
        summary = build_scene(changing, out, SceneParams(**PARAMS), progress=False)
    return out, summary, read


def _segments(path: Path, **over) -> tuple[list, range, range, SceneParams]:
    params = SceneParams(**{**PARAMS, **over})
    train, hold = split_video(open_video(path), params)
    return find_segments(path, train, params, progress=False), train, hold, params


def test_two_backgrounds_give_two_segments_and_two_close_plates(changing: Path):
    segments, train, hold, params = _segments(changing)
    assert (train.stop, hold.start) == (HOLD, HOLD)
    assert len(segments) == 2
    assert segments[0].start == 0 and segments[-1].stop == HOLD
    assert abs(segments[1].start - CUT) <= 2, segments  # within a sample of the true change
    plates = build_plates(changing, [spread_indices(s.start, s.stop, params.plate_frames) for s in segments], False)
    a, b, _ = _backgrounds()
    for plate, bg in zip(plates, (a, b), strict=True):
        err = np.abs(plate.image.astype(np.int16) - bg.astype(np.int16))
        assert float(np.median(err)) <= 3 and float(np.mean(err)) < 6  # walkers gone, JPEG noise only


def test_steady_scene_gives_one_segment(steady: Path):
    segments, train, _, _ = _segments(steady)
    assert [(s.start, s.stop) for s in segments] == [(train.start, train.stop)]
    assert _segments(steady, segments=False)[0] == segments


def test_segments_off_or_short_input_give_one_segment(changing: Path, synth_video: Path):
    segments, train, _, _ = _segments(changing, segments=False)
    assert [(s.start, s.stop) for s in segments] == [(0, HOLD)]
    assert len(_segments(synth_video)[0]) == 1  # 48 training frames: shorter than two minimum segments


def test_held_out_frames_never_reach_a_plate(changing_scene: tuple[Path, dict, list[int]]):
    out, summary, read = changing_scene
    assert read and max(read) < HOLD, "a held-out frame was read for the segments or a plate"

    doc = json.loads((out / "scene.json").read_text())
    segs = doc["segments"]
    assert summary["segments"] == segs and len(segs) == 2
    assert [s["plate"] for s in segs] == ["plates/plate_00.png", "plates/plate_01.png"]
    assert segs[0]["frames"][0] == 0 and segs[-1]["frames"][1] == HOLD - 1
    assert all(s["plate_frames"] == PARAMS["plate_frames"] for s in segs)
    _, _, c = _backgrounds()
    plates = [cv2.imread(str(out / s["plate"])) for s in segs]
    for plate in plates:
        assert np.abs(plate.astype(np.int16) - c).mean() > 40  # no trace of the held-out scene
    main = int(np.argmax([s["n_frames"] for s in segs]))
    assert segs[main]["main"] and doc["main_segment"] == main
    assert np.array_equal(cv2.imread(str(out / "plate.png")), plates[main])
    # Held-out frames (background C, continuing from B's walkers) are each judged against one plate.
    assert sum(doc["holdout_frames_per_plate"]) == doc["n_holdout"]


def test_closest_plate_picks_the_fitting_background():
    a, b, _ = _backgrounds()
    frame_b = synth.frame_at(7, b)
    assert closest_plate(frame_b, [seg_mod.thumbnail(a), seg_mod.thumbnail(b)]) == 1
    assert closest_plate(synth.frame_at(7, a), [seg_mod.thumbnail(a), seg_mod.thumbnail(b)]) == 0


def test_compose_draws_from_every_segment_plate(changing_scene: tuple[Path, dict, list[int]], tmp_path: Path):
    from trainer.compose import ComposeParams, compose_dataset
    from trainer.compose.scene import load_scene

    out = changing_scene[0]
    scene = load_scene(out)
    assert [p.file for p in scene.plates] == ["plates/plate_00.png", "plates/plate_01.png"]
    assert [p.weight for p in scene.plates] == [CUT, HOLD - CUT]
    # A cutout carries its own segment's plate around it (the context the Poisson blend adapts to).
    assert np.array_equal(scene.plate_for_frame(CUT + 1), scene.plates[1].image)
    composed = tmp_path / "composed"
    compose_dataset(out, composed, ComposeParams(n_images=24, seed=1, cls_size=64), progress=False)
    doc = json.loads((composed / "compose.json").read_text())
    used = {src: [r.get("plate") for r in doc["images"] if r["source"] == src] for src in ("composed", "negative")}
    for src, plates in used.items():
        assert set(plates) <= {"plates/plate_00.png", "plates/plate_01.png"}, src
    every = used["composed"] + used["negative"]
    assert set(every) == {"plates/plate_00.png", "plates/plate_01.png"}


@pytest.mark.real
def test_thermal_harbour_months_split_into_a_few_segments():
    images = SHARED / "thermal-harbour" / "images"
    if not images.is_dir():
        pytest.skip("needs ../shared/data")
    params = SceneParams()
    train, _ = split_video(open_video(images), params)
    segments = find_segments(images, train, params, progress=False)
    assert 1 < len(segments) < 30
    assert segments[0].start == 0 and segments[-1].stop == train.stop
    assert all(len(s) >= params.segment_min_frames for s in segments)
