"""People seen from above (a ceiling camera): "auto" falls back to the "any" orientation, finds elongated
figures at every angle with their axis-aligned boxes, and writes a scene compose can read. Upright
footage still picks "upright"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CctvkitError
from edge.eval.coco import iou_matrix
from edge.sampling import spread_indices
from trainer.compose.scene import load_scene
from trainer.scene.frames import iter_frames
from trainer.scene.params import SceneParams
from trainer.scene.plate import build_plate
from trainer.scene.run import build_scene
from trainer.scene.sizemodel import RadialSize, fit_radial_size
from trainer.scene.topdown import AnyPersonFinder

W, H, N = 320, 240, 60
LENGTH, WIDTH = 30, 14  # a walker from above: shoulders-to-feet ellipse about twice as long as wide
# (start centre, end centre, colour): straight walks at 0, 45, 90 and 135 degrees, body along the motion.
WALKS = (
    ((40.0, 60.0), (150.0, 60.0), (40, 30, 30)),
    ((200.0, 40.0), (290.0, 130.0), (30, 30, 110)),
    ((60.0, 110.0), (60.0, 210.0), (20, 60, 40)),
    ((280.0, 160.0), (190.0, 220.0), (90, 40, 90)),
)


def _background() -> np.ndarray:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (H // 4, W // 4, 3)).astype(np.float32)
    img = np.clip(np.array([160, 165, 170], np.float32) + cv2.resize(noise, (W, H)) * 16, 0, 255)
    img = img.astype(np.uint8)
    for x in range(0, W, 40):  # floor tiles: edges that must not show up as motion
        cv2.line(img, (x, 0), (x, H - 1), (120, 125, 130), 1)
    return img


def _draw(img: np.ndarray, mask: np.ndarray, t: int, walk: tuple) -> None:
    (x0, y0), (x1, y1), colour = walk
    f = t / (N - 1)
    cx, cy = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
    deg = math.degrees(math.atan2(y1 - y0, x1 - x0))
    for target, value in ((img, colour), (mask, 255)):
        cv2.ellipse(target, (round(cx), round(cy)), (LENGTH // 2, WIDTH // 2), deg, 0, 360, value, -1)
    hx, hy = cx + 0.3 * LENGTH * math.cos(math.radians(deg)), cy + 0.3 * LENGTH * math.sin(math.radians(deg))
    cv2.circle(img, (round(hx), round(hy)), 5, (70, 100, 160), -1)  # the head, a different colour


def _true_boxes(t: int) -> np.ndarray:
    out = []
    for walk in WALKS:
        m = np.zeros((H, W), np.uint8)
        _draw(np.zeros((H, W, 3), np.uint8), m, t, walk)
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, np.float32)


@pytest.fixture(scope="module")
def topdown_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("topdown") / "images"
    folder.mkdir()
    bg = _background()
    for t in range(N):
        img = bg.copy()
        for walk in WALKS:
            _draw(img, np.zeros((H, W), np.uint8), t, walk)
        cv2.imwrite(str(folder / f"frame_{t:04d}.png"), img)
    return folder


PARAMS = {"plate_frames": 30, "calib_frames": 40, "scan_stride": 1}


@pytest.fixture(scope="module")
def topdown_scene(topdown_frames: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("topdown_scene")
    return out, build_scene(topdown_frames, out, SceneParams(**PARAMS), progress=False)


def test_auto_falls_back_to_any_and_boxes_fit(topdown_scene: tuple[Path, dict]):
    out, s = topdown_scene
    assert s["orientation"] == "any" and "upright" in s["orientation_reason"]
    assert s["detections_by_source"].keys() == {"fg-any"}
    assert s["perspective"]["measure"] == "long_side"
    size = RadialSize.from_json(s["perspective"]["size_model"])
    assert abs(size.size_at(W / 2, H / 2) - LENGTH) <= 4  # the figures' length, everywhere
    ious, extra = [], 0
    for label in sorted((out / "frames" / "labels").glob("*.txt")):
        t = int(label.stem[1:])
        rows = np.loadtxt(label, ndmin=2).reshape(-1, 5)
        found = np.stack([(rows[:, 1] - rows[:, 3] / 2) * W, (rows[:, 2] - rows[:, 4] / 2) * H,
                          (rows[:, 1] + rows[:, 3] / 2) * W, (rows[:, 2] + rows[:, 4] / 2) * H], axis=1)
        m = iou_matrix(_true_boxes(t), found)
        ious.extend(m.max(axis=1) if m.size else [0.0] * len(WALKS))
        extra += max(0, len(found) - len(WALKS))
    assert np.mean(ious) >= 0.8 and np.percentile(ious, 10) >= 0.6, np.round(ious, 2)
    assert extra == 0, "boxes on the empty floor"
    assert s["n_cutouts"] >= 2 and s["n_holdout_boxes"] > 0


def test_any_scene_loads_in_compose(topdown_scene: tuple[Path, dict]):
    out, _ = topdown_scene
    scene = load_scene(out)
    cut = json.loads((out / "cutouts.json").read_text())
    # height_px is the length (the model's measure), not the box height, so compose scales consistently.
    assert all(abs(c["height_px"] - LENGTH) <= 5 for c in cut)
    assert len(scene.cutouts) >= 2 and scene.walkable.any()
    assert scene.perspective.height_at(scene.perspective.row_range[0]) > 10


def test_forced_upright_is_obeyed(topdown_frames: Path, topdown_scene: tuple[Path, dict], tmp_path: Path):
    """orientation: upright is never overridden; it only sees the walker lying along the columns."""
    s = build_scene(topdown_frames, tmp_path, SceneParams(**PARAMS, orientation="upright"), progress=False)
    assert s["orientation"] == "upright" and "size_model" not in s["perspective"]
    assert s["n_train_boxes"] < 0.5 * topdown_scene[1]["n_train_boxes"]


def test_upright_video_stays_upright(synth_scene: tuple[Path, dict]):
    _, s = synth_scene
    assert s["orientation"] == "upright"
    assert s["perspective"]["model"] == "linear" and "size_model" not in s["perspective"]


def test_two_people_in_a_row_are_split(topdown_frames: Path):
    """Two walkers end to end make one blob about two lengths long: cut into two people."""
    plate = build_plate(topdown_frames, spread_indices(0, N, 30), progress=False)
    size = RadialSize(0.0, float(LENGTH), (W / 2, H / 2), radius_range=(0.0, 200.0))
    finder = AnyPersonFinder(plate, SceneParams(), size)
    frame = plate.image.copy()
    walk = ((100.0, 150.0), (100.0, 150.0), (40, 30, 30))
    _draw(frame, np.zeros((H, W), np.uint8), 0, walk)
    _draw(frame, np.zeros((H, W), np.uint8), 0, ((100.0 + LENGTH, 150.0), (100.0 + LENGTH, 150.0), (30, 30, 110)))
    people = [p for p in finder.find(frame) if 70 < p.box[0] < 160 and 130 < p.box[1] < 170]
    assert len(people) == 2
    assert all(0.7 * LENGTH <= p.extra["size"] <= 1.3 * LENGTH for p in people)


def test_finder_any_is_deterministic(topdown_frames: Path):
    plate = build_plate(topdown_frames, spread_indices(0, N, 20), progress=False)
    frame = dict(iter_frames(topdown_frames, [33]))[33]
    a = AnyPersonFinder(plate, SceneParams()).find(frame)
    b = AnyPersonFinder(plate, SceneParams()).find(frame.copy())
    assert len(a) == len(WALKS)
    assert [p.box.tolist() for p in a] == [p.box.tolist() for p in b]


def test_radial_fit_finds_the_trend_and_round_trips():
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [384, 288], (60, 2))
    r = np.hypot(pts[:, 0] - 192, pts[:, 1] - 144)
    sizes = 60 - 0.25 * r + rng.normal(0, 1, 60)
    sizes[:6] *= 2  # merged pairs: outliers
    model, inliers = fit_radial_size(pts, sizes, (192.0, 144.0))
    assert abs(model.a + 0.25) < 0.03 and abs(model.b - 60) < 3
    assert not inliers[:6].any()
    assert RadialSize.from_json(json.loads(json.dumps(model.to_json()))) == model
    with pytest.raises(CctvkitError, match="no people found"):
        fit_radial_size(pts[:3], sizes[:3], (192.0, 144.0))
