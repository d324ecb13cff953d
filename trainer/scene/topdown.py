"""Find people lying at any angle in the image (a ceiling or fisheye camera looking down): foreground
blobs of person-like size and fill, any orientation, no HOG (its detector only knows upright pedestrians).

The box is the axis-aligned box of the blob's pixels, which is what a hand labeller draws around a person
seen from above. A blob about k person-lengths long is k people in a row (walking together, or one passing
another) and is cut across its long axis at the emptiest places near the even split points.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.scene.blobs import largest_component, nms
from trainer.scene.params import SceneParams
from trainer.scene.people import PersonFinder, PersonObservation
from trainer.scene.plate import Plate
from trainer.scene.sizemodel import RadialSize

SOURCE = "fg-any"  # detections_by_source key: foreground shape only, any orientation
MAX_FRAME_SHARE = 0.4  # without a size model, a blob longer than this share of the frame's short side is
# not one person (a light change, a door, a trolley); merged pairs below it are the size fit's outliers
MIN_FILL = 0.35  # pixels / minimum-area rectangle: an ellipse fills 0.79, a person with an arm out ~0.5


def blob_geometry(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float, tuple[float, float]]:
    """(long side, short side, angle of the long side in radians, centre) of the pixels' minimum-area
    rectangle; +1 so a one-pixel-wide line has width 1, as a box would."""
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    (cx, cy), (w, h), deg = cv2.minAreaRect(pts)
    w, h = w + 1.0, h + 1.0
    theta = np.deg2rad(deg) if w >= h else np.deg2rad(deg + 90.0)
    return float(max(w, h)), float(min(w, h)), float(theta), (float(cx), float(cy))


class AnyPersonFinder(PersonFinder):
    """Same interface and observations as PersonFinder; `size_model` plays the perspective's part."""

    def __init__(self, plate: Plate, params: SceneParams, size_model: RadialSize | None = None):
        super().__init__(plate, params.model_copy(update={"hog": False}))
        self.size_model = size_model
        self.centre = (self.w / 2.0, self.h / 2.0)

    def expected_size(self, x: float, y: float) -> float | None:
        return None if self.size_model is None else float(self.size_model.size_at(x, y))

    def find_with_mask(self, frame: np.ndarray, frame_index: int = -1) -> tuple[list[PersonObservation], np.ndarray]:
        fg = self.fg.mask(frame)
        # Join the parts of one person (head apart from the shoulders, a bag): a closing a few pixels wide,
        # used only to decide which pixels belong together; each person keeps its own pixels.
        k = 3 if self.size_model is None else max(3, int(round(0.12 * self.size_model.b)) | 1)
        joined = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        people: list[PersonObservation] = []
        min_px = max(6, self.params.min_person_px // 2)
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < min_px:
                continue
            m = (labels[y : y + h, x : x + w] == i) & (fg[y : y + h, x : x + w] > 0)
            people.extend(self._people_in_blob(m, x, y, depth=0))
        for p in people:
            p.frame = frame_index
        keep = nms([p.box for p in people], [p.score for p in people], 0.5)
        people = [people[i] for i in keep]
        people.sort(key=lambda p: (float(p.box[0]), float(p.box[1])))
        return people, fg

    def _people_in_blob(self, m: np.ndarray, ox: int, oy: int, depth: int) -> list[PersonObservation]:
        ys, xs = np.nonzero(m)
        if len(ys) < 6:
            return []
        long, short, theta, (cx, cy) = blob_geometry(ys, xs)
        exp = self.expected_size(cx + ox, cy + oy)
        if exp is not None and depth < 2:
            # k people in a row along the long axis, or two side by side across it (short side as long
            # as a person is wide: a person seen from above is at most ~0.8 of its length wide).
            if long > 1.45 * exp:
                parts = _split_along(m, ys, xs, theta, max(2, int(round(long / exp))))
            elif short > 0.95 * exp:
                parts = _split_along(m, ys, xs, theta + np.pi / 2, 2)
            else:
                parts = []
            if len(parts) > 1:
                out = [p for part in parts for p in self._people_in_blob(part, ox, oy, depth + 1)]
                if out:
                    return out
        obs = self._any_observation(m, ys, xs, long, short, theta, exp, ox, oy)
        return [] if obs is None else [obs]

    def _any_observation(self, m, ys, xs, long, short, theta, exp, ox, oy) -> PersonObservation | None:
        y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        fx1, fy1, fx2, fy2 = x1 + ox, y1 + oy, x2 + ox, y2 + oy
        border = fx1 <= 1 or fy1 <= 1 or fx2 >= self.w - 1 or fy2 >= self.h - 1
        elong = long / max(short, 1.0)
        fill = len(ys) / (long * short)
        if elong > self.params.max_elongation or fill < MIN_FILL:
            return None
        if exp is None:
            lo, hi = 0.75 * self.params.min_person_px, MAX_FRAME_SHARE * min(self.h, self.w)
            if not lo <= long <= hi:
                return None
            s_size = 1.0
        else:
            rel = long / exp
            if not (0.45 if border else 0.6) <= rel <= 1.5:
                return None
            s_size = float(np.exp(-(((rel - 1.0) / 0.3) ** 2)))
        # Plausibility of the shape alone (as PersonFinder's "fg" score): seen from above a walker is an
        # ellipse about twice as long as wide; a round blob is a head straight below the lens, or a bag.
        s_elong = float(np.exp(-(((elong - 2.0) / 1.5) ** 2)))
        score = 0.15 + 0.35 * s_elong * s_size
        box = np.array([fx1, fy1, fx2, fy2], np.float32)
        return PersonObservation(box=box, foot=((fx1 + fx2) / 2.0, float(fy2)), mask=m[y1:y2, x1:x2].copy(),
                                 score=float(score), source=SOURCE, touches_border=border,
                                 extra={"fill": fill, "aspect": elong, "size": long, "short": short,
                                        "angle": theta, "centre": (float(xs.mean() + ox), float(ys.mean() + oy))})


def _split_along(m: np.ndarray, ys: np.ndarray, xs: np.ndarray, theta: float, k: int) -> list[np.ndarray]:
    """Cut the blob into k pieces across the direction theta, each cut at the emptiest place within 30% of
    a piece's length from the even split point (the gap between two people is the narrowest part)."""
    t = (xs - xs.mean()) * np.cos(theta) + (ys - ys.mean()) * np.sin(theta)
    lo, hi = float(t.min()), float(t.max())
    n_bins = max(int(hi - lo) + 1, k)
    hist = np.bincount(np.minimum(((t - lo)).astype(int), n_bins - 1), minlength=n_bins).astype(np.float64)
    step = (hi - lo) / k
    cuts = []
    for j in range(1, k):
        a, b = int(max(1, j * step - 0.3 * step)), int(min(n_bins - 1, j * step + 0.3 * step))
        cuts.append(lo + (a + int(np.argmin(hist[a:b])) if b > a else j * step))
    edges = [-np.inf, *cuts, np.inf]
    parts = []
    for e0, e1 in zip(edges[:-1], edges[1:], strict=True):
        sel = (t >= e0) & (t < e1)
        if sel.any():
            part = np.zeros_like(m)
            part[ys[sel], xs[sel]] = True
            parts.append(largest_component(part))
    return parts

