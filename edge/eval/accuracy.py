"""The accuracy pass: one model over a LabelledSet, scored by edge/eval/scores.py.

Any predictor works (the edge runtime's Detector / Classifier, or Ultralytics' predict in the export
verification's reference row): detectors must return person boxes from a threshold of at most EVAL_CONF,
which `model_accuracy` arranges for edge models and restores afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rich.progress import track

from edge.detector import Classifier, Detector
from edge.eval.labelled import LabelledSet
from edge.eval.scores import EVAL_CONF, score_classifier, score_detections
from edge.types import Detections

DetectFn = Callable[[np.ndarray], Detections]
ClassifyFn = Callable[[np.ndarray], bool]


def person_only(d: Detections, person_class: int) -> Detections:
    """Ground truth is class 0 = person; a COCO model's person is its own class id."""
    keep = d.class_ids == person_class
    return Detections(d.xyxy[keep], d.scores[keep], np.zeros(int(keep.sum()), np.int64))


def _each(frames: list[np.ndarray], label: str, progress: bool) -> Any:
    return track(frames, description=f"{label:<24}", disable=not progress or not label, transient=True)


def detector_accuracy(predict: DetectFn, data: LabelledSet, conf: float, label: str = "",
                      progress: bool = False) -> dict[str, Any]:
    """Box scores on the labelled frames, presence on them and on the person-free frames."""
    preds = [predict(f) for f in _each(data.frames, label, progress)]
    negs = [predict(f) for f in _each(data.negatives, label, progress)]
    return score_detections(preds, data.gts, conf=conf, negatives=negs)


def classifier_accuracy(predict: ClassifyFn, data: LabelledSet, label: str = "",
                        progress: bool = False) -> dict[str, Any]:
    verdicts = [bool(predict(f)) for f in _each(data.presence_frames, label, progress)]
    return score_classifier(np.array(verdicts, bool), data.presence_truth)


def model_accuracy(model: Detector | Classifier, data: LabelledSet, conf: float, label: str = "",
                   progress: bool = False) -> dict[str, Any]:
    """A Detector is run at EVAL_CONF for the whole curve (its own threshold is put back after); P, R,
    F1, count and presence are read at `conf`. A Classifier answers at its own threshold."""
    if isinstance(model, Classifier):
        return classifier_accuracy(lambda f: model.classify(f).is_person, data, label, progress)
    before = model.conf
    model.conf = min(before, EVAL_CONF)
    try:
        return detector_accuracy(lambda f: person_only(model.detect(f), model.spec.person_class), data, conf,
                                 label, progress)
    finally:
        model.conf = before
