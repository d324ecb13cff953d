"""The persons stage's quality gate: a generated person is kept only if a person detector finds it where it
was pasted.

Each cutout is pasted the way compose will paste it (trainer/compose/placement.py and blend/): on the plate
of its silhouette's segment, feet on a walkable spot, at the perspective's height for that row, feathered.
It passes when a person box of the gate's detector overlaps the pasted box with IoU >= 0.5 at confidence
>= conf. The detector, in order of preference:
  detector  the run's own exported detector (the manifest's models): it knows this camera best
  teacher   --teacher MODEL (.onnx / .tflite with a 'person' class, trainer/relabel/teacher.py)
  hog       OpenCV's default HOG people detector, the last resort. Its scores are SVM margins, not
            probabilities (about 0..3; 0.5 is evidence.py's threshold), and its 64x128 window sees a
            ~96 px person, so it runs on the pasted region rescaled to that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.eval.coco import iou_matrix
from edge.manifest import Manifest
from edge.types import ModelSpec
from trainer.compose.blend import get_blend
from trainer.compose.placement import FootSampler, Placement, geometry, render_cutout
from trainer.compose.scene import Cutout, Scene

MATCH_IOU = 0.5
DETECT_FLOOR = 0.05  # boxes down to this are asked for, so a rejected person still records how close it came
MIN_PERSON_PX = 12  # feet only where the perspective gives a person at least this tall
HOG_PERSON_PX = 96  # the person height HOG's 64x128 window holds
BLEND = "feather"  # compose's default blend


class GateDetector:
    """score(frame, box): the best confidence of a person box with IoU >= 0.5 with `box` (0 when none)."""

    by: str = ""
    model: str | None = None
    default_conf = 0.3  # a detector's person probability

    def boxes(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def score(self, frame: np.ndarray, box: np.ndarray) -> float:
        xyxy, scores = self.boxes(frame, box)
        if len(scores) == 0:
            return 0.0
        ok = iou_matrix(box, xyxy)[0] >= MATCH_IOU
        return float(scores[ok].max()) if ok.any() else 0.0


class EdgeGate(GateDetector):
    """A detector file through the edge runtime (the run's own, or a teacher), on the whole frame."""

    def __init__(self, by: str, spec: ModelSpec, path: Path, threads: int = 2):
        from edge.detector import Detector

        self.by, self.model = by, str(path)
        self.detector = Detector(spec, path, threads=threads, conf=DETECT_FLOOR, classes=[spec.person_class])
        self.person = spec.person_class

    def boxes(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.detector.detect(frame)
        keep = d.class_ids == self.person
        return d.xyxy[keep], d.scores[keep]


class HogGate(GateDetector):
    by, model = "hog", None
    default_conf = 0.5  # an SVM margin: trainer/scene/evidence.py's HOG_MIN_SCORE

    def __init__(self) -> None:
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def boxes(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = max(float(box[3] - box[1]), 1.0)
        s = HOG_PERSON_PX / h
        # The window's margins around a person: ~1/6 of the height above and below, a third either side.
        rx1, ry1 = int(max(box[0] - 0.5 * h, 0)), int(max(box[1] - 0.3 * h, 0))
        rx2, ry2 = int(min(box[2] + 0.5 * h, frame.shape[1])), int(min(box[3] + 0.3 * h, frame.shape[0]))
        crop = cv2.resize(frame[ry1:ry2, rx1:rx2], None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        ph, pw = max(0, (136 - crop.shape[0] + 1) // 2), max(0, (72 - crop.shape[1] + 1) // 2)
        crop = cv2.copyMakeBorder(crop, ph, ph, pw, pw, cv2.BORDER_REPLICATE)
        rects, weights = self.hog.detectMultiScale(crop, winStride=(4, 4), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        x, y, w, wh = np.asarray(rects, np.float32).reshape(-1, 4).T
        x, y = (x - pw) / s + rx1, (y - ph) / s + ry1
        w, wh = w / s, wh / s
        # The body inside the window (evidence.py's convention): the middle 60 % across, 75 % down.
        xyxy = np.stack([x + 0.2 * w, y + 0.125 * wh, x + 0.8 * w, y + 0.875 * wh], axis=1)
        return xyxy, np.asarray(weights, np.float32).reshape(-1)


class NoGate(GateDetector):
    """persons.gate: off -- every sample is kept (scored 1.0). For cameras no available detector sees well
    (HOG finds few thermal people): the contact sheet is then the only check, and the report says so."""

    by, model = "off", None
    default_conf = 1.0

    def score(self, frame: np.ndarray, box: np.ndarray) -> float:
        return 1.0


def run_detector(manifest: Manifest) -> tuple[str, ModelSpec] | None:
    """The run's exported detector the gate prefers: ONNX FP32, else any ONNX, else None."""
    specs = manifest.models("detect")
    onnx = sorted((n for n, s in specs.items() if s.format == "onnx"), key=lambda n: specs[n].precision != "fp32")
    return (onnx[0], specs[onnx[0]]) if onnx else None


def choose_gate(manifest: Manifest, teacher: Any | None = None, threads: int = 2) -> GateDetector:
    """teacher: a trainer.relabel.teacher.TeacherFile (checked here, before anything is written)."""
    found = run_detector(manifest)
    if found is not None:
        name, spec = found
        return EdgeGate("detector", spec, manifest.model_path(name), threads)
    if teacher is not None:
        return EdgeGate("teacher", teacher.check(), teacher.path, threads)
    return HogGate()


@dataclass(frozen=True)
class Pasted:
    conf: float
    plate: int  # index into scene.plates
    foot: tuple[int, int]
    box: tuple[float, float, float, float]  # the pasted person's box in the frame

    def to_json(self) -> dict[str, Any]:
        return {"plate_foot": list(self.foot), "pasted_box": [round(v, 1) for v in self.box]}


class Gate:
    """Pastes generated cutouts into the scene like compose does and asks the detector about each."""

    def __init__(self, scene: Scene, detector: GateDetector, conf: float, seed: int = 0):
        self.scene, self.detector, self.conf = scene, detector, conf
        self.sampler = FootSampler(scene.walkable, scene.perspective, MIN_PERSON_PX, str(scene.root))
        self.blend = get_blend(BLEND)
        self.rng = np.random.default_rng(seed)

    def paste(self, cut: Cutout, frame: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
        """(composite BGR, pasted box xyxy, plate index, foot) of a BGRA cutout on its silhouette's plate."""
        plates = self.scene.plates
        k = next((i for i, p in enumerate(plates) if p.frames[0] <= frame <= p.frames[1]), 0)
        plate = plates[k].image if plates else self.scene.plate
        foot = self.sampler.sample(self.rng)
        target = float(self.scene.perspective.height_at(foot[1]))
        scale = target / cut.height_px
        xy, size = geometry(cut, foot, scale, False)
        rgba, at = render_cutout(cut, Placement(0, foot, target, scale, False, xy, size))
        img, alpha = self.blend(plate, rgba, at)
        ys, xs = np.nonzero(alpha > 0.5)
        if len(ys) == 0:
            return img, np.zeros(4, np.float32), k, foot
        box = np.array([at[0] + xs.min(), at[1] + ys.min(), at[0] + xs.max() + 1, at[1] + ys.max() + 1],
                       np.float32)
        return img, box, k, foot

    def judge(self, cut: Cutout, frame: int) -> Pasted:
        img, box, k, foot = self.paste(cut, frame)
        if box[2] <= box[0]:
            return Pasted(0.0, k, foot, (0.0, 0.0, 0.0, 0.0))
        conf = self.detector.score(img, box)
        return Pasted(conf, k, foot, tuple(float(v) for v in box))  # type: ignore[arg-type]

    def passes(self, p: Pasted) -> bool:
        return p.conf >= self.conf
