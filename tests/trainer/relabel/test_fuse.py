"""Fusing the teacher's labels with the scene finder's (trainer/relabel/fuse.py)."""

from __future__ import annotations

import numpy as np

from trainer.relabel.fuse import fuse_boxes

TEACHER = np.array([[10, 10, 30, 70]], np.float32)
CANDIDATES = np.array([[10, 10, 30, 70], [100, 10, 120, 70]], np.float32)  # + one below the teacher's conf
FINDER = np.array([[11, 12, 31, 72],  # the teacher's person again
                   [101, 11, 121, 69],  # the teacher's unsure one: not added twice
                   [200, 20, 220, 80]], np.float32)  # someone only the finder saw


def test_teacher_mode_keeps_the_teachers_boxes_only():
    np.testing.assert_array_equal(fuse_boxes(TEACHER, CANDIDATES, FINDER, "teacher"), TEACHER)


def test_union_adds_only_the_people_no_teacher_box_covers():
    out = fuse_boxes(TEACHER, CANDIDATES, FINDER, "union")
    assert len(out) == 2
    np.testing.assert_array_equal(out[0], TEACHER[0])
    np.testing.assert_array_equal(out[1], FINDER[2])


def test_union_without_teacher_boxes_is_the_finder():
    out = fuse_boxes(np.zeros((0, 4)), np.zeros((0, 4)), FINDER, "union")
    np.testing.assert_array_equal(out, FINDER)
