from __future__ import annotations

import numpy as np
import pytest
from daemon_helpers import moving_frames, static_frames

from edge.motion import MotionGate


def run(gate: MotionGate, frames: list[np.ndarray], dt: float = 0.04) -> list[bool]:
    return [gate.should_infer(f, now=i * dt) for i, f in enumerate(frames)]


def test_static_scene_is_skipped_after_the_first_frame():
    gate = MotionGate(max_skip_s=100.0)
    verdicts = run(gate, static_frames(40))
    assert verdicts[0] is True and not any(verdicts[1:])  # sensor noise is not motion
    assert gate.stats.skipped == 39 and gate.stats.checks == 40


def test_moving_object_is_never_skipped():
    gate = MotionGate(max_skip_s=100.0)
    assert all(run(gate, moving_frames(40)))
    assert gate.stats.skipped == 0 and gate.stats.moving == 39


def test_still_scene_is_rechecked_every_max_skip_seconds():
    gate = MotionGate(max_skip_s=0.5)
    verdicts = run(gate, static_frames(50), dt=0.1)  # 5 s of a still scene
    runs = [i for i, v in enumerate(verdicts) if v]
    assert runs == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert gate.stats.forced == 9


def test_slow_change_accumulates_against_the_kept_reference():
    # A light change of 1 grey level per frame never differs by 25 between neighbours, but 30 frames in it
    # has drifted past the threshold against the reference kept since the last motion.
    base = static_frames(1)[0].astype(np.int16)
    frames = [np.clip(base + i, 0, 255).astype(np.uint8) for i in range(40)]
    verdicts = run(MotionGate(max_skip_s=100.0), frames)
    fired = [i for i, v in enumerate(verdicts) if v]
    assert fired[0] == 0 and 20 <= fired[1] <= 30


def test_every_nth_frame_is_compared_and_the_rest_follow():
    gate = MotionGate(every=4, max_skip_s=100.0)
    verdicts = run(gate, static_frames(40))
    # frame 0 has nothing to compare with, so frames 0-3 run on its verdict; every later group is still
    assert gate.stats.checks == 10 and verdicts[:5] == [True] * 4 + [False] and gate.stats.skipped == 36


def test_bad_settings():
    with pytest.raises(ValueError):
        MotionGate(threshold=0)
    with pytest.raises(ValueError):
        MotionGate(every=0)
