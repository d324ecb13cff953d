"""Accuracy metrics in numpy: COCO-style detection mAP and frame-level person presence."""

from edge.metrics.map import evaluate_detections, presence_metrics

__all__ = ["evaluate_detections", "presence_metrics"]
