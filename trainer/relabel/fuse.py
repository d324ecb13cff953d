"""One frame's labels from two labellers: the teacher's boxes and the scene's own person finder.

"teacher": the teacher's boxes only. "union": the teacher's boxes, plus the finder's boxes that no
teacher box (at any score down to its low threshold) already covers: people the teacher does not know
from this viewpoint (a fisheye ceiling camera: a COCO model finds 2 % of CAVIAR's people, the
foreground finder 32 % at P 0.95) still get a label, while a person both see is labelled once, with the
teacher's tighter box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.eval.coco import iou_matrix

FUSE_MODES = ("teacher", "union")
COVER_IOU = 0.3  # a finder box overlapping any teacher candidate this much is the same person


def fuse_boxes(teacher: np.ndarray, candidates: np.ndarray, finder: np.ndarray, mode: str) -> np.ndarray:
    """teacher: the kept teacher boxes; candidates: every teacher box down to its low threshold; finder:
    the scene finder's boxes. All pixel xyxy; returns pixel xyxy."""
    teacher = np.asarray(teacher, np.float32).reshape(-1, 4)
    if mode == "teacher" or not len(finder):
        return teacher
    finder = np.asarray(finder, np.float32).reshape(-1, 4)
    cover = np.concatenate([teacher, np.asarray(candidates, np.float32).reshape(-1, 4)])
    if len(cover):
        finder = finder[iou_matrix(finder, cover).max(axis=1) < COVER_IOU]
    return np.concatenate([teacher, finder])


AGREE_IOU = 0.5


def agreement(a: list[np.ndarray], b: list[np.ndarray], name_a: str, name_b: str) -> dict[str, Any]:
    """How many of a's boxes b also has (IoU >= 0.5), and the other way round, over the same frames: two
    labellers' agreement, a check of the labels that needs no real label."""
    hit_a = hit_b = n_a = n_b = 0
    for x, y in zip(a, b, strict=True):
        n_a, n_b = n_a + len(x), n_b + len(y)
        if len(x) and len(y):
            m = iou_matrix(x, y) >= AGREE_IOU
            hit_a += int(m.any(axis=1).sum())
            hit_b += int(m.any(axis=0).sum())
    return {f"{name_a}_boxes": n_a, f"{name_b}_boxes": n_b,
            f"{name_a}_boxes_{name_b}_confirms": round(hit_a / n_a, 3) if n_a else None,
            f"{name_b}_boxes_{name_a}_also_found": round(hit_b / n_b, 3) if n_b else None}
