"""The compose building blocks on their own: blends, label boxes, occlusion, placement, split, params."""

from __future__ import annotations

import cv2
import numpy as np
import pydantic
import pytest
from compose_scene_factory import ROW_RANGE, A, B, draw_figure, make_plate, make_walkable

from edge.errors import CctvkitError
from trainer.compose import ComposeParams
from trainer.compose.blend import BLENDS, get_blend
from trainer.compose.harmonize import NoiseBank, PlateStats, apply_jitter, harmonize, sample_jitter
from trainer.compose.labels import Layer, select_visible, visibility
from trainer.compose.params import JitterParams
from trainer.compose.placement import FootSampler, Placement, geometry, iou, plan_persons
from trainer.compose.scene import Cutout
from trainer.compose.split import split_by_time
from trainer.scene.perspective import Perspective

PERSPECTIVE = Perspective(A, B, row_range=ROW_RANGE)


def _with_context(fig: np.ndarray, value: int = 128, pad: int = 4) -> np.ndarray:
    """Transparent pixels carry surroundings and a transparent margin, as the compositor's cutouts do."""
    out = fig.copy()
    out[:, :, :3][fig[:, :, 3] == 0] = value
    out = cv2.copyMakeBorder(out, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    out[:pad, :, 3] = out[-pad:, :, 3] = 0
    out[:, :pad, 3] = out[:, -pad:, 3] = 0
    return out


@pytest.mark.parametrize("name", sorted(BLENDS))
@pytest.mark.parametrize(
    "xy", [(100, 80), (-10, 150), (290, -20)]
)  # inside, over the left / top-right border
def test_each_blend_runs_and_its_alpha_gives_the_pasted_box(name, xy):
    plate = make_plate()
    fig = _with_context(draw_figure(70, (40, 40, 220)))
    out, alpha = get_blend(name)(plate, fig, xy)
    assert out.shape == plate.shape and out.dtype == np.uint8
    assert alpha.shape == fig.shape[:2] and alpha.dtype == np.float32
    assert not np.shares_memory(out, plate)
    assert np.array_equal(plate, make_plate()), "a blend must not modify its input"
    (v,) = visibility([Layer(xy[0], xy[1], alpha)], plate.shape[1], plate.shape[0])
    assert v.box is not None
    # Where the figure was pasted: pixels moved more than halfway from the plate to the figure's red.
    red = plate[:, :, 2].astype(np.float32)
    coverage = (out[:, :, 2] - red) / (220 - red)
    ys, xs = np.nonzero(coverage > 0.5)
    assert iou(v.box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)) > 0.9
    # And that is the cutout's own mask, give or take the pixel of rim that feathering trims.
    ys, xs = np.nonzero(fig[:, :, 3] > 127)
    mask_box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float) + np.array(xy * 2)
    mask_box[[0, 2]] = mask_box[[0, 2]].clip(0, plate.shape[1])
    mask_box[[1, 3]] = mask_box[[1, 3]].clip(0, plate.shape[0])
    assert iou(v.box, mask_box) > 0.85, (v.box, mask_box)


def test_unknown_blend_lists_valid_names():
    with pytest.raises(CctvkitError) as e:
        get_blend("glue")
    for name in BLENDS:
        assert name in str(e.value)


def test_occlusion_reduces_visibility_and_box():
    a = np.ones((40, 20), np.float32)
    layers = [Layer(10, 10, a), Layer(20, 10, a)]  # the second (nearer) covers the right half of the first
    back, front = visibility(layers, 100, 100)
    assert front.visible_fraction == 1.0 and front.box == (20, 10, 40, 50)
    assert back.visible_fraction == pytest.approx(0.5) and back.box == (10, 10, 20, 50)
    assert select_visible([back, front], 0.6, 4) == [False, True]
    # The frame border hides too: half the person is left of x = 0.
    (edge,) = visibility([Layer(-10, 10, a)], 100, 100)
    assert edge.visible_fraction == pytest.approx(0.5) and edge.box == (0, 10, 10, 50)


def test_lower_foot_row_gives_taller_person():
    fig = draw_figure(60, (0, 0, 255))
    cut = Cutout("c.png", 0, fig, (fig.shape[1] / 2, 60.0), 60.0, (0, 0, fig.shape[1], 60))
    sizes = []
    for row in (110, 170, 230):
        scale = PERSPECTIVE.height_at(row) / cut.height_px
        xy, (w, h) = geometry(cut, (160, row), scale, flip=False)
        assert xy[1] + h == row, "the feet must land on the foot row"
        sizes.append(h)
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] == pytest.approx(A * 230 + B, abs=1)


def test_plan_persons_respects_mask_range_iou_and_order():
    walkable = make_walkable() > 127
    sampler = FootSampler(walkable, PERSPECTIVE, 10.0)
    cuts = [
        Cutout(f"{i}.png", i, draw_figure(h, (0, 0, 255)), (h * 0.21, float(h)), float(h), (0, 0, 1, 1))
        for i, h in enumerate((30, 60, 90))
    ]
    rng = np.random.default_rng(0)
    for _ in range(20):
        plan = plan_persons(rng, sampler, PERSPECTIVE, cuts, [np.arange(3)], 6, (0.9, 1.1), 0.5, 0.3, 1.5)
        assert plan and all(isinstance(p, Placement) for p in plan)
        assert [p.foot[1] for p in plan] == sorted(p.foot[1] for p in plan), "far (upper) persons first"
        for i, p in enumerate(plan):
            assert walkable[p.foot[1], p.foot[0]] and ROW_RANGE[0] <= p.foot[1] <= ROW_RANGE[1]
            assert all(iou(p.box, q.box) <= 0.3 for q in plan[i + 1 :])


def test_sampler_without_walkable_rows_errors():
    with pytest.raises(CctvkitError, match="walkable"):
        FootSampler(np.zeros((240, 320), bool), PERSPECTIVE, 10.0)


def test_time_split_keeps_blocks_apart():
    res = split_by_time(list(range(0, 1000, 10)), list(range(5, 1000, 50)), 10, 0.2)
    assert res.method == "time" and res.val_blocks == [2, 7]
    val = [f for f, s in zip(range(0, 1000, 10), res.cutouts, strict=True) if s == "val"]
    assert val and all(200 <= f < 300 or 700 <= f < 800 for f in val)
    assert None in res.cutouts  # the guard band around train/val boundaries
    # All cutouts from one frame: still two non-empty pools.
    one = split_by_time([7, 7, 7, 7], [], 10, 0.2)
    assert "train" in one.cutouts and "val" in one.cutouts


def test_harmonize_relative_gain_follows_the_plate():
    plate = np.full((100, 100, 3), 200, np.uint8)
    plate[:, 50:] = 100  # right half in shadow
    fig = draw_figure(40, (120, 120, 120))
    out, info = harmonize(fig, PlateStats(plate), (60, 30, 80, 70), (10, 30, 30, 70), strength=1.0)
    assert info["mode"] == "relative" and all(g < 1 for g in info["gain"])
    person = fig[:, :, 3] > 0
    assert out[:, :, :3][person].mean() < fig[:, :, :3][person].mean() * 0.8
    same, _ = harmonize(fig, PlateStats(plate), (10, 30, 30, 70), (10, 30, 30, 70), strength=1.0)
    assert np.array_equal(same, fig)


def test_jitter_is_seeded_and_keeps_the_frame_shape():
    plate = make_plate()
    noise = NoiseBank(plate.shape[:2], 0)
    j1 = sample_jitter(np.random.default_rng(1), JitterParams())
    j2 = sample_jitter(np.random.default_rng(1), JitterParams())
    assert j1 == j2
    a, b = apply_jitter(plate, j1, noise), apply_jitter(plate, j2, noise)
    assert a.shape == plate.shape and np.array_equal(a, b) and not np.array_equal(a, plate)
    off = JitterParams.off()
    assert np.array_equal(apply_jitter(plate, sample_jitter(np.random.default_rng(0), off), noise), plate)


def test_params_reject_unknown_and_inconsistent_values():
    with pytest.raises(pydantic.ValidationError):
        ComposeParams(n_imgs=3)
    with pytest.raises(pydantic.ValidationError):
        ComposeParams(persons_per_image=(5, 2))
    with pytest.raises(pydantic.ValidationError):
        ComposeParams(negative_fraction=0.6, real_fraction=0.5)
    assert ComposeParams().blend in BLENDS
