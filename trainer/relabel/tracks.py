"""Pseudo-labels from a detector's boxes over time: link them into tracks, keep what persists.

A detector run frame by frame (a teacher, or our own first detector in self-training) makes two kinds
of mistakes a tracker can see: a false box that flickers for one frame, and a person it misses for a
frame or two (or finds only at a low score). So the boxes of a run of frames are linked with
Ultralytics' ByteTrack (a kept, maintained implementation already in the trainer's dependencies; its
two-stage association is exactly "low-score boxes may continue a track but not start one"), then:
  - a track seen in fewer than `min_hits` frames is dropped, unless a box in it scores >= keep_conf
    (a person entering at the last frame of the run is still a person);
  - a gap of up to `max_gap` frames inside a kept track is filled with the linearly interpolated box;
  - low-score boxes (low_conf..high_conf) count only when a kept track claims them.
The detector's own boxes are the labels (not the Kalman filter's predictions, which lag a walker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import Field

from edge.strict import Strict
from edge.types import Detections


class TrackParams(Strict):

    low_conf: float = Field(0.1, ge=0.0, lt=1.0, description="weakest box that may continue a track")
    high_conf: float = Field(0.25, gt=0.0, lt=1.0, description="weakest box that may start a track")
    keep_conf: float = Field(0.6, gt=0.0, le=1.0, description="a box this sure is kept even if its track "
                             "is short")
    min_hits: int = Field(3, ge=1, description="frames a track needs to count as a person")
    max_gap: int = Field(2, ge=0, description="missed frames inside a track that are filled in")
    match_iou: float = Field(0.2, gt=0.0, le=1.0, description="ByteTrack: min IoU to link a box to a track "
                             "(frames of a scan are a few frames apart, people move between them)")
    buffer: int = Field(5, ge=1, description="frames a lost track waits to be found again")


class _Boxes:
    """The Results-like view ByteTrack reads: conf, cls, xywh and boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray):
        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.zeros(len(self.conf), np.float32)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, keep: Any) -> _Boxes:
        return _Boxes(self.xyxy[keep], self.conf[keep])


@dataclass
class LinkedBoxes:
    """Per input frame: the kept boxes (pixel xyxy) and their scores (an interpolated box scores 0)."""

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    stats: dict[str, Any] = field(default_factory=dict)


def _tracker(p: TrackParams) -> Any:
    from export.offline import configure

    configure()  # Ultralytics is imported only after the offline setup
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(track_high_thresh=p.high_conf, track_low_thresh=p.low_conf,
                           new_track_thresh=p.high_conf, track_buffer=p.buffer, match_thresh=1.0 - p.match_iou,
                           fuse_score=False)
    return BYTETracker(args)


def _assign(dets: list[Detections], p: TrackParams) -> list[np.ndarray]:
    """Per frame, the track id of each box (-1: in no track)."""
    tracker = _tracker(p)
    ids = []
    for d in dets:
        keep = d.scores > p.low_conf
        boxes = _Boxes(d.xyxy, d.scores)
        own = np.full(len(d), -1, np.int64)
        out = tracker.update(boxes[keep]) if keep.any() else tracker.update(_Boxes(np.zeros((0, 4)), []))
        where = np.flatnonzero(keep)
        for row in np.asarray(out).reshape(-1, 8):
            own[where[int(row[7])]] = int(row[4])
        ids.append(own)
    return ids


def link_boxes(dets: list[Detections], p: TrackParams) -> LinkedBoxes:
    """Filter the boxes of consecutive frames (in time order) by the tracks they form."""
    ids = _assign(dets, p)
    hits: dict[int, list[tuple[int, int]]] = {}
    for t, own in enumerate(ids):
        for k, tid in enumerate(own):
            if tid >= 0:
                hits.setdefault(int(tid), []).append((t, k))
    kept = {tid for tid, hs in hits.items()
            if len(hs) >= p.min_hits or max(dets[t].scores[k] for t, k in hs) >= p.keep_conf}
    boxes: list[list[np.ndarray]] = [[] for _ in dets]
    scores: list[list[float]] = [[] for _ in dets]
    n_filled = 0
    for tid in kept:
        hs = hits[tid]
        for (t0, k0), (t1, k1) in zip(hs, hs[1:] + [hs[-1]], strict=True):
            a = dets[t0].xyxy[k0]
            boxes[t0].append(a)
            scores[t0].append(float(dets[t0].scores[k0]))
            if 1 < t1 - t0 <= p.max_gap + 1:
                b = dets[t1].xyxy[k1]
                for t in range(t0 + 1, t1):
                    w = (t - t0) / (t1 - t0)
                    boxes[t].append((1 - w) * a + w * b)
                    scores[t].append(0.0)
                    n_filled += 1
    untracked = 0
    for t, (d, own) in enumerate(zip(dets, ids, strict=True)):
        lone = (own < 0) & (d.scores >= p.keep_conf)  # not linked at all, yet very sure
        untracked += int(lone.sum())
        boxes[t].extend(d.xyxy[lone])
        scores[t].extend(d.scores[lone].tolist())
    n_in = int(sum((d.scores >= p.high_conf).sum() for d in dets))
    n_out = sum(len(b) for b in boxes)
    stats = {"frames": len(dets), "tracks": len(hits), "tracks_kept": len(kept),
             "boxes_at_high_conf": n_in, "boxes_kept": n_out, "boxes_filled": n_filled,
             "low_score_boxes_kept": sum(1 for s in scores for v in s if 0 < v < p.high_conf),
             "untracked_sure_boxes": untracked}
    return LinkedBoxes([np.asarray(b, np.float32).reshape(-1, 4) for b in boxes],
                       [np.asarray(s, np.float32) for s in scores], stats)


def threshold_only(dets: list[Detections], conf: float) -> LinkedBoxes:
    """The baseline the tracker is measured against: every box at or above conf, nothing linked."""
    keep = [d.scores >= conf for d in dets]
    return LinkedBoxes([d.xyxy[k] for d, k in zip(dets, keep, strict=True)],
                       [d.scores[k] for d, k in zip(dets, keep, strict=True)],
                       {"frames": len(dets), "boxes_kept": int(sum(k.sum() for k in keep))})


def linkable_share(dets: list[Detections], conf: float, iou: float) -> float:
    """Share of the sure boxes (>= conf) that overlap a sure box of the previous or next frame by >= iou.

    IoU tracking needs people to move less than about their own width between two frames. Footage sampled
    sparsely in time does not: thermal-harbour's consecutive frames share IoU > 0.2 for only 18 % of the
    real boxes (median 0), CAVIAR at 25 fps for nearly all. Below LINKABLE_MIN, linking would drop real
    people as flickers, so the caller keeps the plain threshold and says why."""
    from edge.eval.coco import iou_matrix

    sure = [d.xyxy[d.scores >= conf] for d in dets]
    total = linked = 0
    for t, boxes in enumerate(sure):
        if not len(boxes):
            continue
        best = np.zeros(len(boxes))
        for u in (t - 1, t + 1):
            if 0 <= u < len(sure) and len(sure[u]):
                best = np.maximum(best, iou_matrix(boxes, sure[u]).max(axis=1))
        total += len(boxes)
        linked += int((best >= iou).sum())
    return linked / total if total else 0.0


LINKABLE_MIN = 0.5


def link_or_threshold(dets: list[Detections], conf: float, track: bool, p: TrackParams,
                      whose: str, frame: str = "frame") -> tuple[LinkedBoxes, str, float]:
    """Linked by tracks where the footage is dense enough in time (linkable_share), else the plain threshold;
    with the line a summary says about which, and the share."""
    share = linkable_share(dets, conf, p.match_iou)
    if track and share >= LINKABLE_MIN:
        return link_boxes(dets, p), "tracked (trainer/relabel/tracks.py)", share
    how = ("threshold: tracking is off" if not track else
           f"threshold: only {share:.0%} of {whose} boxes overlap one in the next or previous {frame} "
           f"(< {LINKABLE_MIN:.0%}), too sparse in time to track")
    return threshold_only(dets, conf), how, share
