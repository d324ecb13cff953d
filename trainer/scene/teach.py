"""The scene stage's teacher pass: the teacher sees every scan frame beside the person finder, then the
labels of the pseudo-labelled frames are the teacher's boxes (linked over time where the footage allows)
fused with the finder's (trainer/relabel/fuse.py), and with `tighten` on, each box tightened to the frame's
foreground blob where that blob is clean (trainer/relabel/tighten.py). The finder still makes the plates' people, the
perspective and the cutouts: those need foreground masks, which a box does not give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.types import Detections
from trainer.relabel.fuse import agreement, fuse_boxes
from trainer.relabel.teacher import Teacher, TeacherParams
from trainer.relabel.tighten import tighten_boxes
from trainer.relabel.tracks import link_or_threshold


class TeacherScan:
    def __init__(self, teacher: Teacher, params: TeacherParams):
        self.teacher, self.p = teacher, params
        self.frames: list[int] = []
        self.dets: list[Detections] = []
        self.finder: dict[int, np.ndarray] = {}
        self.masks: dict[int, tuple[np.ndarray, tuple[int, ...]]] = {}  # packed: 1 bit a pixel
        self.tightened = 0
        self.mode = params.fuse if params.fuse != "auto" else "teacher"  # decided in labels()

    def see(self, index: int, frame: np.ndarray, finder_boxes: np.ndarray, labelled: bool,
            fg: np.ndarray | None = None) -> None:
        """One scan frame, in time order: what the teacher finds in it (down to its low threshold). fg: the
        frame's foreground mask, kept (packed) for a labelled frame when its boxes are to be tightened."""
        self.frames.append(index)
        self.dets.append(self.teacher.find(frame))
        if labelled:
            self.finder[index] = np.asarray(finder_boxes, np.float32).reshape(-1, 4)
            if self.p.tighten.enabled and fg is not None:
                self.masks[index] = (np.packbits(fg > 0), fg.shape)

    def _tight(self, boxes: np.ndarray, fg: np.ndarray | None) -> np.ndarray:
        if not self.p.tighten.enabled or fg is None or not len(boxes):
            return boxes
        out, n = tighten_boxes(boxes, fg, self.p.tighten)
        self.tightened += n
        return out

    def _mask(self, index: int) -> np.ndarray | None:
        if index not in self.masks:
            return None
        packed, shape = self.masks.pop(index)
        return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape)

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
        out = {i: self._tight(fuse_boxes(kept, cand, self.finder[i], self.mode), self._mask(i))
               for i, kept, cand in rows}
        summary = {"teacher": self.teacher.describe(), "labels": how, "linkable_share": round(share, 3),
                   "fuse": self.mode, "fuse_reason": why, "scan_frames": len(self.frames), "tracking": linked.stats,
                   "label_boxes": sum(len(b) for b in out.values()), "label_boxes_from_teacher": n_teacher,
                   "label_boxes_tightened": self.tightened if self.p.tighten.enabled else None,
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

    def holdout_boxes(self, frame: np.ndarray, finder_boxes: np.ndarray, fg: np.ndarray | None = None) -> np.ndarray:
        """A held-out frame (sampled sparsely, so no tracking): the teacher at conf, fused and tightened like
        the rest."""
        d = self.teacher.find(frame)
        return self._tight(fuse_boxes(d.xyxy[d.scores >= self.p.conf], d.xyxy, finder_boxes, self.mode), fg)
