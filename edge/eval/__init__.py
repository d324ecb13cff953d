"""The one evaluation core (numpy only, runs on the device): labelled-frame loading and scoring.

labelled.py  the YOLO folder loader (one set of rules) and LabelledSet
holdout.py   a run's held-out frames: real labels matched by frame key, or the scene's pseudo-labels
coco.py      COCO-style AP (agrees with pycocotools)
scores.py    detection and classifier scores, one set of key names
accuracy.py  one model over a LabelledSet
The demo's bench stage, `trainer export` verification, `bench run` and `trainer experiment` all score here.
"""

from edge.eval.accuracy import classifier_accuracy, detector_accuracy, model_accuracy, person_only
from edge.eval.labelled import (
    LabelledSet,
    load_negatives,
    load_yolo_folder,
    natural_key,
    with_negatives,
)
from edge.eval.scores import (
    DETECTION_KEYS,
    EVAL_CONF,
    PRESENCE_KEYS,
    presence_metrics,
    score_classifier,
    score_detections,
)

__all__ = [
    "DETECTION_KEYS",
    "EVAL_CONF",
    "PRESENCE_KEYS",
    "LabelledSet",
    "classifier_accuracy",
    "detector_accuracy",
    "load_negatives",
    "load_yolo_folder",
    "model_accuracy",
    "natural_key",
    "person_only",
    "presence_metrics",
    "score_classifier",
    "score_detections",
    "with_negatives",
]
