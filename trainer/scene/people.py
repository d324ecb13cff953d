"""Find the people in one frame without labels: foreground blobs from the background plate, checked and
split by OpenCV's HOG people detector, judged against the scene's perspective when it is known.

Foreground alone gives tight, pixel-exact shapes but merges people who touch; HOG alone is loose (its
64x128 window has a margin around the body) and misses small or partly hidden people. Together: HOG says
how many people a blob holds and roughly where, the blob's pixels say exactly where their outlines are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from trainer.scene.blobs import inside, largest_component, nms, same_body, split_side_by_side, upper_width
from trainer.scene.foreground import Foreground
from trainer.scene.params import SceneParams
from trainer.scene.perspective import Perspective
from trainer.scene.plate import Plate

HOG_PERSON_PX = 96.0  # the default detector's 64x128 window holds a ~96 px tall person
STACKED = 1.3  # a blob this many expected heights tall holds one person in front of another
WIDTH_RATIO = 0.42  # typical full-body box width / height of a walking person (vtest median 0.37-0.40)
MAX_HOG_PIXELS = 600_000  # the largest rescaled crop HOG is run on (~0.1 s)


@dataclass
class PersonObservation:
    box: np.ndarray  # (4,) float32 xyxy, pixel edges: the mask covers rows y1..y2-1, cols x1..x2-1
    foot: tuple[float, float]  # bottom centre of the box
    mask: np.ndarray  # (y2-y1, x2-x1) bool, the person's pixels inside the box
    score: float
    source: str  # "hog+fg": foreground confirmed by HOG; "fg": foreground shape only
    touches_border: bool = False
    frame: int = -1
    extra: dict = field(default_factory=dict)

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


class PersonFinder:
    def __init__(self, plate: Plate, params: SceneParams, perspective: Perspective | None = None,
                 width_ratio: float = WIDTH_RATIO):
        self.params = params
        self.fg = Foreground(plate, params)
        self.perspective = perspective
        self.width_ratio = width_ratio
        self.h, self.w = plate.image.shape[:2]
        # Motion the last find() judged not to be people (box, why, its foreground mask in the box): vehicles,
        # light changes; kept for hard negatives (trainer/scene/distractors.py).
        self.rejected: list[tuple[np.ndarray, str, np.ndarray]] = []
        self.hog: cv2.HOGDescriptor | None = None
        if params.hog:
            self.hog = cv2.HOGDescriptor()
            self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    # -- public -------------------------------------------------------------------------------------------
    def find(self, frame: np.ndarray, frame_index: int = -1) -> list[PersonObservation]:
        return self.find_with_mask(frame, frame_index)[0]

    def find_with_mask(self, frame: np.ndarray, frame_index: int = -1) -> tuple[list[PersonObservation], np.ndarray]:
        fg = self.fg.mask(frame)
        self.rejected = []
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        people: list[PersonObservation] = []
        for group in self._groups(stats[1:], offset=1):
            x1 = int(min(stats[i, 0] for i in group))
            y1 = int(min(stats[i, 1] for i in group))
            x2 = int(max(stats[i, 0] + stats[i, 2] for i in group))
            y2 = int(max(stats[i, 1] + stats[i, 3] for i in group))
            gmask = np.isin(labels[y1:y2, x1:x2], group)
            people.extend(self._people_in_group(frame, gmask, x1, y1))
        for p in people:
            p.frame = frame_index
        # Final de-duplication: a HOG hit may reach into a neighbouring blob, and a box mostly inside
        # another is a fragment of that person (head above a dark belt), not a second person.
        keep = nms([p.box for p in people], [p.score for p in people], 0.5)
        people = [people[i] for i in keep]
        people = [p for p in people if not any(q is not p and q.height > p.height and inside(p.box, q.box) > 0.7
                                               for q in people)]
        people.sort(key=lambda p: (float(p.box[0]), float(p.box[1])))
        return people, fg

    # -- expected sizes -----------------------------------------------------------------------------------
    def expected_height(self, foot_row: float) -> float | None:
        if self.perspective is None:
            return None
        return float(self.perspective.height_at(foot_row))

    def _min_height(self, foot_row: float) -> float:
        exp = self.expected_height(foot_row)
        base = float(self.params.min_person_px)
        return base if exp is None else max(0.75 * base, 0.5 * exp)

    # -- grouping -----------------------------------------------------------------------------------------
    def _groups(self, stats: np.ndarray, offset: int) -> list[list[int]]:
        """Join blobs that are parts of one person: head cut off at the neck, legs below a dark belt, or
        the two halves of someone walking behind a lamp post."""
        comps = [i for i in range(len(stats)) if stats[i, 4] >= max(6, self.params.min_person_px // 2)]
        parent = {i: i for i in comps}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        boxes = {i: [stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]] for i in comps}
        changed = True
        while changed:
            changed = False
            for i in comps:
                for j in comps:
                    ri, rj = root(i), root(j)
                    if ri >= rj:
                        continue
                    if not self._one_person(boxes[ri], boxes[rj]):
                        continue
                    a, b = boxes[ri], boxes[rj]
                    union = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    parent[rj] = ri
                    boxes[ri] = union
                    changed = True
        groups: dict[int, list[int]] = {}
        for i in comps:
            groups.setdefault(root(i), []).append(i + offset)
        return [sorted(g) for _, g in sorted(groups.items())]

    def _one_person(self, a: list[int], b: list[int]) -> bool:
        union = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
        uh, uw = union[3] - union[1], union[2] - union[0]
        exp = self.expected_height(union[3])
        ref = exp if exp is not None else uh
        if exp is not None and uh > 1.25 * exp:
            return False
        overlap_x = min(a[2], b[2]) - max(a[0], b[0])
        overlap_y = min(a[3], b[3]) - max(a[1], b[1])
        if overlap_x >= 0.5 * min(a[2] - a[0], b[2] - b[0]):
            # One above the other: a small vertical gap, and not wider than a person together.
            gap_y = -overlap_y
            return gap_y <= 0.2 * ref and uw <= 0.8 * ref
        if overlap_y >= 0.5 * min(a[3] - a[1], b[3] - b[1]):
            # Side by side with a pole-wide gap, and together only one person wide.
            gap_x = -overlap_x
            return gap_x <= max(2.0, 0.12 * ref) and uw <= 0.6 * ref
        return False

    # -- per group ----------------------------------------------------------------------------------------
    def _people_in_group(self, frame: np.ndarray, gmask: np.ndarray, ox: int, oy: int) -> list[PersonObservation]:
        gh, gw = gmask.shape
        if gh < self._min_height(oy + gh) * 0.9:
            return []
        exp = self.expected_height(oy + gh)
        box = np.array([ox, oy, ox + gw, oy + gh], np.float32)
        if exp is not None and (gw > 6 * self.width_ratio * exp or gh > 2.5 * exp):
            self.rejected.append((box, "far bigger than a few people", gmask))
            return []  # a vehicle, a light change, a camera knock
        hits = self._hog_hits(frame, gmask, ox, oy) if self.hog is not None else []
        if not hits and exp is not None and gw > 2.5 * self.width_ratio * exp:
            self.rejected.append((box, "wider than two people, HOG sees nobody", gmask))
            return []  # a vehicle, not a crowd
        if len(hits) >= 2:
            split = [self._observation(m, ox, oy, s, "hog+fg") for m, s in self._split_by_hits(gmask, hits, ox, oy)]
            # Every piece must look like a person; a sliver means HOG saw one body twice (wide stride).
            if all(p is not None for p in split):
                return [p for p in split if p is not None]
        weight = max((s for _, s in hits), default=-1.0)
        source = "hog+fg" if hits else "fg"
        out = [self._observation(m, ox, oy, weight, source) for m in self._split_by_geometry(gmask, oy)]
        return [p for p in out if p is not None]

    def _hog_hits(self, frame: np.ndarray, gmask: np.ndarray, ox: int, oy: int) -> list[tuple[np.ndarray, float]]:
        """HOG windows (frame xyxy of the inner body region, weight) on a rescaled crop around the blob."""
        assert self.hog is not None
        gh, gw = gmask.shape
        exp = self.expected_height(oy + gh)
        ref = exp if exp is not None else min(gh, 2.8 * gw)
        ref = max(ref, float(self.params.min_person_px))
        # Persons down to 0.6x the reference height fill the window at the finest pyramid level: the one
        # behind another is smaller, and without a perspective the blob height over-estimates.
        scale = HOG_PERSON_PX / (0.6 * ref)
        scale = min(max(scale, 0.3), 4.0)
        # Bound the work on one blob (a big blob without a perspective to judge it by).
        scale = min(scale, float(np.sqrt(MAX_HOG_PIXELS / max(gh * gw * 3, 1))))
        # Window margins: 1/6 of the height above and below, a third of the height either side.
        mx, my = int(0.4 * ref) + 4, int(0.25 * ref) + 4
        rx1, ry1 = max(ox - mx, 0), max(oy - my, 0)
        rx2, ry2 = min(ox + gw + mx, self.w), min(oy + gh + my, self.h)
        crop = frame[ry1:ry2, rx1:rx2]
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        ch, cw = crop.shape[:2]
        pad_x, pad_y = max(0, (72 - cw + 1) // 2), max(0, (136 - ch + 1) // 2)
        if pad_x or pad_y:
            crop = cv2.copyMakeBorder(crop, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        stride = self.params.hog_win_stride
        rects, weights = self.hog.detectMultiScale(
            crop, hitThreshold=self.params.hog_hit_threshold, winStride=(stride, stride), padding=(8, 8),
            scale=self.params.hog_scale, groupThreshold=0,  # no OpenCV grouping: our NMS is deterministic
        )
        if len(rects) == 0:
            return []
        boxes, scores = [], []
        gbox = np.array([ox, oy, ox + gw, oy + gh], np.float64)
        for (x, y, w, h), wt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=True):
            fx1 = (x - pad_x) / scale + rx1
            fy1 = (y - pad_y) / scale + ry1
            fw, fh = w / scale, h / scale
            # The body inside the window: the central half of the width, the middle 3/4 of the height.
            inner = np.array([fx1 + 0.25 * fw, fy1 + 0.125 * fh, fx1 + 0.75 * fw, fy1 + 0.875 * fh])
            ix1, iy1 = int(max(inner[0], gbox[0])) - ox, int(max(inner[1], gbox[1])) - oy
            ix2, iy2 = int(min(inner[2], gbox[2])) - ox, int(min(inner[3], gbox[3])) - oy
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            support = gmask[iy1:iy2, ix1:ix2].sum() / ((inner[2] - inner[0]) * (inner[3] - inner[1]))
            if support < 0.3:
                continue  # a HOG hit on background texture, or one that only grazes the blob
            boxes.append(inner)
            scores.append(float(wt))
        keep = nms(boxes, scores, 0.3)
        # Two windows over one body (different scales, a stride apart): keep the stronger. Two bodies stand
        # side by side, or one behind the other, which only a blob taller than one person can hold.
        exp_bottom = self.expected_height(oy + gh)
        # HOG may say "two people, one behind the other" for a blob a little taller than one person;
        # geometry alone needs a clearer margin (STACKED).
        stacked = exp_bottom is not None and gh > 1.2 * exp_bottom
        # Two people overlapping side by side: their bodies are closer than one body width apart.
        wide = exp_bottom is not None and upper_width(gmask) >= 1.3 * self.width_ratio * exp_bottom
        out: list[tuple[np.ndarray, float]] = []
        for i in keep:
            b = boxes[i]
            if not any(same_body(b, o, stacked, wide) for o, _ in out):
                out.append((b, scores[i]))
        return out

    def _split_by_hits(self, gmask: np.ndarray, hits: list[tuple[np.ndarray, float]], ox: int, oy: int):
        """Give each blob pixel to the nearest HOG body (distance in body widths/heights)."""
        gh, gw = gmask.shape
        ys, xs = np.mgrid[0:gh, 0:gw]
        dists = []
        for b, _ in hits:
            cx, cy = (b[0] + b[2]) / 2 - ox, (b[1] + b[3]) / 2 - oy
            bw, bh = max(b[2] - b[0], 1.0), max(b[3] - b[1], 1.0)
            dists.append(((xs - cx) / bw) ** 2 + ((ys - cy) / bh) ** 2)
        owner = np.argmin(np.stack(dists), axis=0)
        for k, (_, wt) in enumerate(hits):
            m = gmask & (owner == k)
            if m.any():
                yield largest_component(m), wt

    def _split_by_geometry(self, gmask: np.ndarray, oy: int) -> list[np.ndarray]:
        """Without HOG's help, using the perspective (one person's height and width at this row):
        a blob too tall is one person in front of another; a blob whose upper body is as wide as k
        people is k people side by side, cut at the emptiest columns near the even split points."""
        gh, gw = gmask.shape
        exp = self.expected_height(oy + gh)
        if exp is None:
            return [gmask]
        person_w = self.width_ratio * exp
        if gh > STACKED * exp:
            return self._split_stacked(gmask, exp, person_w)
        return split_side_by_side(gmask, person_w)

    def _split_stacked(self, gmask: np.ndarray, exp: float, person_w: float) -> list[np.ndarray]:
        """One person in front of another: the front one's feet are the blob's bottom row, so its height
        and width are known; everything else (above it, or beside it) is the visible part of the other."""
        gh, gw = gmask.shape
        cut = int(round(gh - exp))
        legs = gmask[gh - max(int(0.3 * exp), 1):]
        ys, xs = np.nonzero(legs)
        cx = float(np.median(xs)) if len(xs) else gw / 2
        band = np.zeros(gw, bool)
        band[int(max(0, cx - 0.6 * person_w)) : int(min(gw, cx + 0.6 * person_w + 1))] = True
        front = gmask.copy()
        front[:cut] = False
        front[:, ~band] = False
        back = gmask & ~front
        # Behind the front person there may be two people side by side (three in one blob).
        backs = split_side_by_side(back, person_w) if back.any() else []
        return [largest_component(m) for m in (*backs, front) if m.any()]

    def _observation(self, m: np.ndarray, ox: int, oy: int, weight: float, source: str) -> PersonObservation | None:
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            return None
        y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        h, w = y2 - y1, x2 - x1
        fx1, fy1, fx2, fy2 = x1 + ox, y1 + oy, x2 + ox, y2 + oy
        border = fx1 <= 1 or fy1 <= 1 or fx2 >= self.w - 1 or fy2 >= self.h - 1
        fill = len(ys) / float(h * w)
        if h < self._min_height(fy2) or fill < 0.25 or w < 6:
            return None
        aspect = h / max(w, 1)
        exp = self.expected_height(fy2)
        hog = source == "hog+fg"
        if not border and not (1.2 if not hog else 1.0) <= aspect <= 6.0:
            return None
        if exp is not None:
            rel = h / exp
            lo = 0.45 if (border or hog) else 0.6
            if not lo <= rel <= 1.5:
                return None
            if w < 0.2 * exp:
                return None  # a sliver: a split gone wrong, a pole's shadow, a flapping tape end
        if hog:
            score = 0.55 + 0.45 * float(np.tanh(max(weight, 0.0)))
        else:
            # Plausibility of the shape alone: person-like aspect and, when known, the expected height.
            s_aspect = float(np.exp(-(((aspect - 2.5) / 1.2) ** 2)))
            s_height = 1.0 if exp is None else float(np.exp(-(((h / exp - 1.0) / 0.3) ** 2)))
            score = 0.15 + 0.35 * s_aspect * s_height
        box = np.array([fx1, fy1, fx2, fy2], np.float32)
        return PersonObservation(box=box, foot=((fx1 + fx2) / 2.0, float(fy2)), mask=m[y1:y2, x1:x2].copy(),
                                 score=float(score), source=source, touches_border=border,
                                 extra={"fill": fill, "aspect": aspect})
