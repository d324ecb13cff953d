"""The scene stage's teacher pass: the teacher sees every scan frame beside the person finder, then the
labels of the pseudo-labelled frames are the teacher's boxes (linked over time where the footage allows)
fused with the finder's (trainer/relabel/fuse.py). The finder still makes the plates' people, the
perspective and the cutouts: those need foreground masks, which a box does not give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.types import Detections
from trainer.relabel.fuse import agreement, fuse_boxes
from trainer.relabel.teacher import Teacher, TeacherParams
from trainer.relabel.tracks import link_or_threshold


class TeacherScan:
    def __init__(self, teacher: Teacher, params: TeacherParams):
        self.teacher, self.p = teacher, params
        self.frames: list[int] = []
        self.dets: list[Detections] = []
        self.finder: dict[int, np.ndarray] = {}
        self.mode = params.fuse if params.fuse != "auto" else "teacher"  # decided in labels()

    def see(self, index: int, frame: np.ndarray, finder_boxes: np.ndarray, labelled: bool) -> None:
        """One scan frame, in time order: what the teacher finds in it (down to its low threshold)."""
        self.frames.append(index)
        self.dets.append(self.teacher.find(frame))
        if labelled:
            self.finder[index] = np.asarray(finder_boxes, np.float32).reshape(-1, 4)

    def also(self, people: list) -> np.ndarray:
        """The finder's boxes of the frame last seen plus the teacher's sure ones in it."""
        own = np.asarray([p.box for p in people], np.float32).reshape(-1, 4)
        d = self.dets[-1]
        return np.concatenate([own, d.xyxy[d.scores >= self.p.conf]])

    def labels(self) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
        """{frame index: label boxes} of the labelled frames, and what scene.json says about them."""
        p = self.p
        linked, how, share = link_or_threshold(self.dets, p.conf, p.track, p.tracking, "the teacher's", "scan frame")
        rows = [(i, linked.boxes[k], self.dets[k].xyxy) for k, i in enumerate(self.frames) if i in self.finder]
        n_teacher = sum(len(b) for _, b, _ in rows)
        n_finder = sum(len(self.finder[i]) for i, _, _ in rows)
        self.mode, why = self._fuse_mode(n_teacher, n_finder)
        out = {i: fuse_boxes(kept, cand, self.finder[i], self.mode) for i, kept, cand in rows}
        summary = {"teacher": self.teacher.describe(), "labels": how, "linkable_share": round(share, 3),
                   "fuse": self.mode, "fuse_reason": why, "scan_frames": len(self.frames), "tracking": linked.stats,
                   "label_boxes": sum(len(b) for b in out.values()), "label_boxes_from_teacher": n_teacher,
                   "agreement": agreement([self.finder[i] for i, _, _ in rows], [b for _, b, _ in rows],
                                        "finder", "teacher")}
        return out, summary

    def _fuse_mode(self, n_teacher: int, n_finder: int) -> tuple[str, str]:
        if self.p.fuse != "auto":
            return self.p.fuse, "set in the config"
        ratio = n_teacher / n_finder if n_finder else float("inf")
        if ratio < self.p.auto_ratio:
            return "union", (f"the teacher finds {n_teacher} people where the finder finds {n_finder} "
                             f"(< {self.p.auto_ratio:g}x): it does not know this viewpoint, the finder's boxes stay")
        return "teacher", f"the teacher finds {n_teacher} people, the finder {n_finder}: the teacher's boxes only"

    def holdout_boxes(self, frame: np.ndarray, finder_boxes: np.ndarray) -> np.ndarray:
        """A held-out frame (sampled sparsely, so no tracking): the teacher at conf, fused like the rest."""
        d = self.teacher.find(frame)
        return fuse_boxes(d.xyxy[d.scores >= self.p.conf], d.xyxy, finder_boxes, self.mode)
