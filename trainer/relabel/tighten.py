"""A label box tightened to the foreground mask where the mask clearly shows that one person.

A teacher's box (or a detector's in self-training) is drawn around what a model believes is a person; the
background difference shows where the person's pixels are. Where the two agree (one clean blob inside the
box), the blob's own bounding box is the better label: mAP50-95 rewards those last few pixels, and a
learner copies its labeller's slack. Where they do not, the box stays as it was:

- nothing moving under the box (a person standing still has faded into the plate);
- the blob runs out of the box's margin (the person is part of a bigger blob: a crowd, a car, a shadow);
- another label box reaches into the margin (whose pixels are whose is not known);
- the tight box would be a different box (IoU < min_iou) or mostly empty (fill < min_fill): a fragment.

Off by default, on real labels: thermal-harbour's teacher labels (COCO YOLO11n @640, 232 training frames, 983
real boxes) tightened 143 of 528 boxes and got worse, mean IoU of matched boxes 0.825 -> 0.798, real boxes
matched at IoU >= 0.75 41.5 % -> 35.7 % (benchmarks/tighten_labels.py). A thermal person's edges fade into the
plate, so the mask is smaller than the person the labeller drew; the teacher's box was the better one.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from edge.eval.coco import iou_matrix
from edge.strict import Strict


class TightenParams(Strict):
    """scene.teacher.tighten: label boxes of the pseudo-labelled frames tightened to the foreground mask."""

    enabled: bool = Field(False, description="tighten teacher boxes to a clean foreground blob (teacher mode); "
                          "off: it made thermal-harbour's labels worse (module docstring)")
    margin: float = Field(0.15, ge=0.0, le=1.0, description="the blob must end inside the box grown by this "
                          "share of its size on every side")
    min_iou: float = Field(0.5, gt=0.0, le=1.0, description="the tight box must overlap the old one this much")
    min_fill: float = Field(0.35, gt=0.0, le=1.0, description="share of the tight box the blob must fill")


def tighten_boxes(boxes: np.ndarray, mask: np.ndarray, p: TightenParams) -> tuple[np.ndarray, int]:
    """boxes: (N, 4) pixel xyxy; mask: (H, W) foreground (non-zero = moving). Returns the boxes (each tightened
    or as it was) and how many were tightened."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = boxes.copy()
    h, w = mask.shape[:2]
    n = 0
    for k, b in enumerate(boxes):
        bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
        if bw < 2 or bh < 2:
            continue
        x1, y1 = max(int(np.floor(b[0] - p.margin * bw)), 0), max(int(np.floor(b[1] - p.margin * bh)), 0)
        x2, y2 = min(int(np.ceil(b[2] + p.margin * bw)), w), min(int(np.ceil(b[3] + p.margin * bh)), h)
        region = np.asarray(mask[y1:y2, x1:x2] > 0, np.uint8)
        if not region.any() or _neighbour_reaches(boxes, k, (x1, y1, x2, y2)):
            continue
        blob = _blob_of(region, b - np.array([x1, y1, x1, y1], np.float32))
        if blob is None:
            continue
        # Out of the margin on a side that is not the image's edge: part of something bigger.
        if ((blob[0, :].any() and y1 > 0) or (blob[-1, :].any() and y2 < h)
                or (blob[:, 0].any() and x1 > 0) or (blob[:, -1].any() and x2 < w)):
            continue
        ys, xs = np.nonzero(blob)
        tight = np.array([xs.min() + x1, ys.min() + y1, xs.max() + 1 + x1, ys.max() + 1 + y1], np.float32)
        area = float((tight[2] - tight[0]) * (tight[3] - tight[1]))
        if blob.sum() / area < p.min_fill or iou_matrix(tight[None], b[None])[0, 0] < p.min_iou:
            continue
        out[k] = tight
        n += 1
    return out, n


def _neighbour_reaches(boxes: np.ndarray, k: int, region: tuple[int, int, int, int]) -> bool:
    x1, y1, x2, y2 = region
    for j, o in enumerate(boxes):
        if j != k and min(o[2], x2) > max(o[0], x1) and min(o[3], y2) > max(o[1], y1):
            return True
    return False


def _blob_of(region: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The mask's pixels of the components that lie mostly inside the box (a blob passing through the
    margin only is someone else's); None when there is none."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    inside = np.zeros(region.shape, bool)
    bx1, by1 = max(int(box[0]), 0), max(int(box[1]), 0)
    bx2, by2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    inside[by1:by2, bx1:bx2] = True
    keep = np.zeros(region.shape, bool)
    found = False
    for c in range(1, n):
        comp = labels == c
        size = int(stats[c, cv2.CC_STAT_AREA])
        if size and (comp & inside).sum() >= 0.5 * size:
            keep |= comp
            found = True
    return keep if found else None
