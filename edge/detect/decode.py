"""Raw model outputs -> Detections / class probabilities.

The YOLOv8/YOLO11 head ("yolov8" convention) is one tensor (1, 4 + nc, A) -- or (1, A, 4 + nc) after a
transpose some converters add -- of cx, cy, w, h and per-class scores, no objectness. This is the hottest
Python on the device: every step before the confidence filter touches all A anchors (8400 at 640), so those
steps are single vectorised numpy calls on the smallest slice possible (only the wanted classes' rows, in the
tensor's own int8 dtype for quantised models); everything after runs on the few candidates left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge.detect.nms import batched_nms
from edge.detect.preprocess import Letterbox, unletterbox
from edge.errors import CctvkitError
from edge.types import Detections, ModelSpec, QuantParams


def dequantize(x: np.ndarray, q: QuantParams | None) -> np.ndarray:
    """Integer tensor -> float32 real values; float tensors pass through as float32."""
    if x.dtype.kind in "iu":
        if q is None:
            raise ValueError("integer model output without quantisation parameters")
        return (x.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)
    return x.astype(np.float32, copy=False)


def _raw_threshold(conf: float, dtype: np.dtype, q: QuantParams | None) -> float:
    """A threshold in the tensor's stored units that lets through every value whose real value is > conf.
    It is one step loose on purpose; the exact test runs again on the dequantised candidates."""
    if dtype.kind not in "iu":
        return conf
    if q is None or q.scale <= 0:
        raise ValueError("integer model output without quantisation parameters")
    return float(math.floor(conf / q.scale + q.zero_point) - 1)


def head_layout(shape: tuple[int, ...], nc: int) -> bool:
    """True when the head is channels-first (4 + nc, A), False when transposed (A, 4 + nc)."""
    if len(shape) != 2:
        raise ValueError(f"detection head must be 2-D after the batch axis, got {shape}")
    if shape[0] == 4 + nc:
        return True  # Ultralytics' own layout wins when A happens to equal 4 + nc as well
    if shape[1] == 4 + nc:
        return False
    raise ValueError(f"detection head {shape} does not hold 4 box + {nc} class channels")


def _pick_head(outputs: Sequence[np.ndarray], nc: int) -> np.ndarray:
    for out in outputs:
        y = out[0] if out.ndim == 3 and out.shape[0] == 1 else out
        if y.ndim == 2 and 4 + nc in y.shape:
            return y
    shapes = [tuple(o.shape) for o in outputs]
    raise ValueError(f"no output fits a YOLO head with 4 + {nc} channels (outputs {shapes})")


def decode_yolov8(
    outputs: Sequence[np.ndarray],
    spec: ModelSpec,
    lb: Letterbox,
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    max_nms: int = 30000,
) -> Detections:
    """Decode one image's YOLOv8/YOLO11 head into frame-pixel Detections (best-class label per anchor,
    class-aware NMS), matching Ultralytics' non_max_suppression with agnostic=False, multi_label=False."""
    nc = len(spec.class_names)
    try:
        y = _pick_head(outputs, nc)
        first = head_layout(y.shape, nc)
        thr = _raw_threshold(conf, y.dtype, spec.output_quant)
    except ValueError as e:
        raise CctvkitError(str(e), spec.path, "check class_names and output_quant in the ModelSpec") from e

    cls_idx = np.arange(nc) if classes is None else np.asarray(sorted(set(classes)), np.int64)
    if cls_idx.size and (cls_idx.min() < 0 or cls_idx.max() >= nc):
        raise CctvkitError(f"class ids {list(cls_idx)} outside 0..{nc - 1}", spec.path, "check --classes")
    # A model with several person classes (person, person_synthetic): asking for the person asks for all of
    # them, and each anchor's best person class is reported as person_class, so NMS treats them as one.
    merge = np.asarray(sorted(spec.person_classes), np.int64) if len(spec.person_classes) > 1 else None
    if merge is not None and spec.person_class in cls_idx:
        cls_idx = np.union1d(cls_idx, merge)
    if cls_idx.size == 0:
        return Detections.empty()
    all_classes = cls_idx.size == nc
    # Score slice of the wanted classes: rows (k, A) channels-first, columns (A, k) transposed.
    if first:
        scores = y[4:] if all_classes else y[4 + cls_idx]
        best = scores[0] if scores.shape[0] == 1 else scores.max(axis=0)
    else:
        scores = y[:, 4:] if all_classes else y[:, 4 + cls_idx]
        best = scores[:, 0] if scores.shape[1] == 1 else scores.max(axis=1)
    cand = np.flatnonzero(best > thr)
    if cand.size == 0:
        return Detections.empty()

    # From here on only the candidates (tens to hundreds) are touched.
    q = spec.output_quant
    cand_scores = dequantize(best[cand], q)
    ok = cand_scores > conf
    cand, cand_scores = cand[ok], cand_scores[ok]
    if cand.size == 0:
        return Detections.empty()
    if cand.size > max_nms:
        top = np.argpartition(-cand_scores, max_nms)[:max_nms]
        cand, cand_scores = cand[top], cand_scores[top]
    if first:
        boxes = dequantize(y[:4, cand], q)
        which = scores[:, cand].argmax(axis=0) if scores.shape[0] > 1 else np.zeros(cand.size, np.int64)
    else:
        boxes = dequantize(y[cand, :4].T, q)
        which = scores[cand].argmax(axis=1) if scores.shape[1] > 1 else np.zeros(cand.size, np.int64)
    class_ids = cls_idx[which]
    if merge is not None:
        class_ids = np.where(np.isin(class_ids, merge), spec.person_class, class_ids)

    cx, cy, w, h = boxes
    if spec.boxes_normalized:
        in_h, in_w = spec.imgsz
        cx, w, cy, h = cx * in_w, w * in_w, cy * in_h, h * in_h
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keep = batched_nms(xyxy, cand_scores, class_ids, iou, max_det)
    return Detections(unletterbox(xyxy[keep], lb), cand_scores[keep], class_ids[keep])


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def decode_probs(outputs: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """(1, nc) classifier output -> probabilities summing to 1. Softmax is applied only when the model's
    outputs are not already probabilities (logits from an export without the final softmax)."""
    nc = len(spec.class_names)
    out = next((o for o in outputs if o.size == nc), None)
    if out is None:
        raise CctvkitError(
            f"no output holds {nc} class scores (outputs {[tuple(o.shape) for o in outputs]})",
            spec.path,
            "check class_names in the ModelSpec",
        )
    try:
        p = dequantize(out.reshape(-1), spec.output_quant)
    except ValueError as e:
        raise CctvkitError(str(e), spec.path, "set output_quant in the ModelSpec") from e
    # Quantised probabilities sum to 1 only within about nc/2 quantisation steps.
    step = spec.output_quant.scale if spec.output_quant is not None and out.dtype.kind in "iu" else 0.0
    tol = max(1e-3, nc * step)
    if p.min() >= -tol and abs(float(p.sum()) - 1.0) <= tol:
        p = p.clip(0, None)
        return (p / max(float(p.sum()), 1e-12)).astype(np.float32)
    return softmax(p.astype(np.float64)).astype(np.float32)
