"""Linking a detector's boxes over frames (trainer/relabel/tracks.py): what persists stays, flickers go,
short gaps are filled, and footage too sparse in time is recognised as such."""

from __future__ import annotations

import numpy as np

from edge.types import Detections
from trainer.relabel.tracks import TrackParams, link_boxes, linkable_share, threshold_only


def dets(*rows: tuple[float, float, float, float, float]) -> Detections:
    a = np.array(rows, np.float32).reshape(-1, 5)
    return Detections(a[:, :4], a[:, 4], np.zeros(len(a)))


def walker(t: int, x0: float = 20.0) -> tuple[float, float, float, float]:
    x = x0 + 4 * t  # 4 px per frame, 20 px wide: IoU ~0.7 between frames
    return (x, 40.0, x + 20, 100.0)


def test_a_persistent_walker_stays_with_its_gap_filled_and_weak_boxes_kept():
    seq = []
    for t in range(10):
        if t == 4:
            seq.append(dets())  # missed for one frame
        elif t == 6:
            seq.append(dets((*walker(t), 0.15)))  # found only at a low score
        else:
            seq.append(dets((*walker(t), 0.8 if t % 2 else 0.5)))
    out = link_boxes(seq, TrackParams())
    assert [len(b) for b in out.boxes] == [1] * 10
    np.testing.assert_allclose(out.boxes[4][0], walker(4), atol=0.5)  # interpolated between 3 and 5
    assert out.scores[4][0] == 0.0  # an interpolated box says so
    assert out.stats["boxes_filled"] == 1 and out.stats["low_score_boxes_kept"] == 1
    # The plain threshold loses both the gap and the weak box.
    assert [len(b) for b in threshold_only(seq, 0.25).boxes].count(0) == 2


def test_one_frame_flickers_are_dropped_unless_very_sure():
    seq = [dets((*walker(t), 0.7)) for t in range(8)]
    seq[3] = dets((*walker(3), 0.7), (200, 10, 215, 50, 0.4))  # a bin, once, at a middling score
    seq[5] = dets((*walker(5), 0.7), (150, 10, 165, 50, 0.9))  # someone sure, seen once
    out = link_boxes(seq, TrackParams(keep_conf=0.85))
    assert len(out.boxes[3]) == 1 and np.allclose(out.boxes[3][0], walker(3))
    assert len(out.boxes[5]) == 2
    assert out.stats["untracked_sure_boxes"] + out.stats["tracks_kept"] >= 2


def test_weak_boxes_never_start_a_track():
    seq = [dets((100, 100, 120, 160, 0.15)) for _ in range(6)]  # always weak: a shadow the detector half likes
    assert sum(len(b) for b in link_boxes(seq, TrackParams()).boxes) == 0


def test_linkable_share_tells_dense_video_from_sparse_stills():
    dense = [dets((*walker(t), 0.9)) for t in range(6)]
    sparse = [dets((*walker(t, x0=0.0 + 60 * t), 0.9)) for t in range(6)]  # jumps further than it is wide
    assert linkable_share(dense, 0.25, 0.2) == 1.0
    assert linkable_share(sparse, 0.25, 0.2) == 0.0
    assert linkable_share([dets(), dets()], 0.25, 0.2) == 0.0
