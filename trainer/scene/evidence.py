"""The scene stage judges its own evidence before anything is trained on it.

A crowd that never clears breaks the label-free path without saying so: the temporal-median plate keeps
ghosted people, foreground fragments outnumber whole people, and the perspective fitted to the fragments
says people are a fifth of their real height. Composed images on that plate then teach nothing (a busy
concourse: mAP50 0.000 on hand labels, where a COCO model scores 0.733). So, after the scan, four checks,
each against evidence the finder did not produce itself:

  whole_person_share   share of the scan's people that a whole-person detector (HOG) confirmed
  perspective          whole-person detections found on full frames WITHOUT the perspective (HOG, or
                       the teacher when there is one): their height over the perspective's at their feet
  plate_ghosts         whole-person detections on the (supposedly empty) plates, per segment
  plate_unseen         share of each plate never seen without movement (trainer/scene/plate.py fills it in)
  people_per_frame     the finder's count against whole-person detections on the same frames

A failed check names what is missing and the fix (a longer stretch of quieter footage, a teacher model);
`scene.accept_weak_evidence: true` (or --accept-weak-scene) goes on and marks the run low-confidence.
"Any"-orientation scenes (cameras looking down) have no upright whole-person detector to check against;
they are reported as unchecked unless a teacher is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console

from edge.errors import CctvkitError
from edge.sampling import spread_indices
from edge.types import Detections
from trainer.relabel.teacher import Teacher
from trainer.scene.frames import iter_frames
from trainer.scene.params import SceneParams
from trainer.scene.perspective import Perspective
from trainer.scene.plate import Plate

MIN_WHOLE_SHARE = 0.3  # vtest ~0.9, thermal harbour 0.75, the concourse 0.10
CROWD = 8.0  # finder people per frame from which the share is judged (vtest ~4, thermal 3.2, concourse 84)
PERSPECTIVE_RANGE = (0.6, 1.7)  # detected / modelled height (vtest 1.11 after HOG's window margin)
MAX_GHOSTS_PER_PLATE = 2.0
MAX_UNSEEN = 0.05  # share of a plate never seen without movement (a crowd of 120 on vtest's square: 0.18)
MAX_COUNT_RATIO = 3.0  # finder people per frame / whole-person detections per frame
MIN_DETECTIONS = 8  # fewer whole-person detections than this: the perspective check cannot judge
HOG_FRAME_ROWS = 576  # full frames are searched at this height (1080p halved): a 1080p person of 175 px
# becomes 93 px, the HOG window's own size; 576p footage is searched as it is.
HOG_MIN_SCORE = 0.5


@dataclass
class Check:
    name: str
    value: float | None
    limit: str
    ok: bool | None  # None: not enough evidence to judge
    detail: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["value"], float):
            d["value"] = round(d["value"], 3)
        return d


class WholePersonDetector:
    """Whole people on a full frame, no foreground or perspective involved: HOG, or the teacher."""

    def __init__(self, teacher: Any | None = None):
        self.teacher = teacher
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.name = f"teacher {teacher.path.name}" if teacher is not None else "HOG on full frames"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.teacher is not None:
            d: Detections = self.teacher.find(frame)
            return d.xyxy[d.scores >= 0.4]
        h = frame.shape[0]
        s = min(1.0, HOG_FRAME_ROWS / h)
        small = cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else frame
        rects, weights = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32)
        keep = np.asarray(weights).reshape(-1) >= HOG_MIN_SCORE
        x, y, w, h = (np.asarray(rects, np.float32)[keep] / s).T
        # The 64 x 128 window holds a ~96 px tall, ~40 px wide person in its middle: the person's box.
        return np.stack([x + 0.2 * w, y + 0.125 * h, x + 0.8 * w, y + 0.875 * h], axis=1)


def check_whole_share(sources: dict[str, int], per_frame: float) -> Check:
    """Judged in crowds only: a quiet scene of stylised or tiny people HOG does not know (synthetic test
    walkers, 26 px thermal figures) is not wrong for it; fragments outvoting whole people in a crowd is."""
    total = sum(sources.values())
    whole = sources.get("hog+fg", 0)
    share = whole / total if total else None
    ok = None if not total or per_frame < CROWD else share >= MIN_WHOLE_SHARE  # type: ignore[operator]
    tail = "" if ok is not None else f" (judged from {CROWD} people per frame; here {per_frame:.1f})"
    return Check("whole_person_share", share, f">= {MIN_WHOLE_SHARE}", ok,
                 f"{whole} of {total} scanned people confirmed by HOG; the rest are foreground shapes only{tail}")


def check_perspective(boxes: list[np.ndarray], persp: Perspective, detector: str) -> Check:
    b = np.concatenate([x.reshape(-1, 4) for x in boxes]) if boxes else np.zeros((0, 4))
    if len(b) < MIN_DETECTIONS:
        return Check("perspective", None, f"{PERSPECTIVE_RANGE[0]}..{PERSPECTIVE_RANGE[1]}", None,
                     f"{len(b)} whole-person detections ({detector}), fewer than {MIN_DETECTIONS}: unchecked")
    model = np.asarray(persp.height_at(b[:, 3]), np.float64)
    ratio = float(np.median((b[:, 3] - b[:, 1]) / np.maximum(model, 1.0)))
    lo, hi = PERSPECTIVE_RANGE
    return Check("perspective", ratio, f"{lo}..{hi}", lo <= ratio <= hi,
                 f"median height of {len(b)} whole-person detections ({detector}) over the perspective's "
                 "height at their feet")


def check_ghosts(per_plate: list[int], detector: str) -> Check:
    worst = max(per_plate) if per_plate else 0
    return Check("plate_ghosts", float(worst), f"<= {MAX_GHOSTS_PER_PLATE:g} per plate", worst <= MAX_GHOSTS_PER_PLATE,
                 f"whole-person detections ({detector}) on each segment's plate: {per_plate}")


def check_unseen(plates: list[Any], method: str) -> Check:
    """Ghosting the clean plate could not remove: pixels never seen without a moving person."""
    if method != "clean":
        return Check("plate_unseen", None, f"<= {MAX_UNSEEN:g}", None,
                     f"plate method {method}: pixels never seen empty are not counted")
    shares = [round(p.unseen, 3) for p in plates]
    worst = max(shares) if shares else 0.0
    return Check("plate_unseen", worst, f"<= {MAX_UNSEEN:g}", worst <= MAX_UNSEEN,
                 f"share of each segment's plate never seen without movement, filled in from around it: {shares}")


def check_counts(finder_per_frame: float, whole: list[np.ndarray], detector: str) -> Check:
    n = sum(len(x) for x in whole)
    per_frame = n / len(whole) if whole else 0.0
    if n < MIN_DETECTIONS:  # people too small or stylised for the detector (thermal harbour: 26 px)
        return Check("people_per_frame", None, f"<= {MAX_COUNT_RATIO:g}x", None,
                     f"{n} whole-person detections ({detector}), fewer than {MIN_DETECTIONS}, to compare the "
                     f"finder's {finder_per_frame:.1f} people per frame with: unchecked")
    ratio = finder_per_frame / per_frame
    return Check("people_per_frame", ratio, f"<= {MAX_COUNT_RATIO:g}x", ratio <= MAX_COUNT_RATIO,
                 f"the finder's {finder_per_frame:.1f} people per frame over {per_frame:.1f} whole-person "
                 f"detections ({detector})")


def judge(checks: list[Check]) -> dict[str, Any]:
    failed = [c for c in checks if c.ok is False]
    return {"verdict": "weak" if failed else "ok", "failed": [c.name for c in failed],
            "checks": [c.to_json() for c in checks]}


def weak_message(doc: dict[str, Any], teacher: bool) -> tuple[str, str]:
    """(what is missing, the fix) for the one-line error."""
    why = "; ".join(f"{c['name']} {c['value']} (needs {c['limit']})" for c in doc["checks"] if c["ok"] is False)
    fix = ("pass a teacher model (--teacher, e.g. a COCO YOLO .tflite) to label this scene, set scene.plate: clean "
           "(moving pixels left out of the plate), or a longer video "
           "with quieter stretches so the plate can clear; --accept-weak-scene goes on and marks the run "
           "low-confidence") if not teacher else (
           "the teacher labels the frames, but the composed images rest on this scene model: pass a longer "
           "video with quieter stretches, or --accept-weak-scene to go on marked low-confidence")
    return f"the scene's evidence is weak: {why}", fix


def gather(frames: list[np.ndarray], plates: list[np.ndarray], detect: Callable[[np.ndarray], np.ndarray]
           ) -> tuple[list[np.ndarray], list[int]]:
    """Whole-person boxes on the sample frames, and how many on each plate."""
    return [detect(f) for f in frames], [len(detect(p)) for p in plates]


def judge_scene(video: Path, train: range, params: SceneParams, plates: list[Plate], persp: Perspective | None,
                sources: dict[str, int], n_scan: int, teacher: Teacher | None) -> dict:
    """The checks above on a built scene (build_scene's evidence step); weak evidence raises
    CctvkitError unless params.accept_weak_evidence, which marks the scene low-confidence instead."""
    unseen = check_unseen(plates, params.plate)  # pixel statistics: needs no person detector
    if persp is None and teacher is None:
        doc = judge([unseen])
        doc["why"] = ("a camera looking down: no upright whole-person detector to check the people against "
                      "(pass a teacher); only the plate is checked")
        if doc["verdict"] == "ok":
            doc["verdict"] = "unchecked"
    else:
        detector = WholePersonDetector(teacher)
        idx = spread_indices(train.start, train.stop, params.evidence_frames)
        frames = [f for _, f in iter_frames(video, idx)]
        whole, ghosts = gather(frames, [p.image for p in plates], detector)
        per_frame = sum(sources.values()) / max(n_scan, 1)
        checks = [check_ghosts(ghosts, detector.name), unseen, check_counts(per_frame, whole, detector.name)]
        if persp is not None:
            checks = [check_whole_share(sources, per_frame), check_perspective(whole, persp, detector.name),
                      *checks]
        doc = judge(checks)
        doc["detector"] = detector.name
    if doc["verdict"] == "weak":
        what, fix = weak_message(doc, teacher is not None)
        if not params.accept_weak_evidence:
            raise CctvkitError(what, video, fix)
        doc["low_confidence"] = True
        Console(stderr=True).print(f"[yellow]scene: LOW CONFIDENCE[/] {what} (accepted: scene.accept_weak_evidence)",
                                   highlight=False, soft_wrap=True)
    return doc
