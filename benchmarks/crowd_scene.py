"""A crowd that never clears, composed from real people: what the background plate and the scene's
self-check make of it.

    .venv/bin/python benchmarks/crowd_scene.py                 # 200 frames, 45 walkers on vtest's square
    .venv/bin/python benchmarks/crowd_scene.py --walkers 25 --scene

The empty scene is vtest's own plate (PETS 2009, a light crowd that clears); the walkers are the real
photographed people of ../shared/data/human-seg cut out by their masks, scaled to vtest's perspective
(50 px tall at row 150, 160 px at the bottom) and walking across at 2-5 px a frame. With 45 of them, the
pixels of the lower square are covered in most frames, as on a busy concourse: the plain temporal median
there is a blend of clothes. Reported, against the true empty scene: each plate's error where walkers
covered a pixel in more than half the frames, the whole-person detections (HOG) on each plate, and with
--scene the scene stage's self-check with each plate. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import VTEST

HUMAN_SEG = VTEST.parents[1] / "human-seg"


def load_people(limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR crop, float alpha) of each photographed person, cropped to the mask (the person generator's
    own reader of image + mask pairs, so masks of another size are conformed the same way)."""
    from trainer.diffusion.data import find_items, read_item

    if not (HUMAN_SEG / "images").is_dir():
        sys.exit(f"no person cutouts in {HUMAN_SEG}: this benchmark needs ../shared/data")
    people = []
    for item in sorted(find_items(HUMAN_SEG), key=lambda it: str(it.image))[:limit]:
        rgb, mask = read_item(item)
        ys, xs = np.nonzero(mask)
        if len(ys) < 500:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        if (y1 - y0) < 1.5 * (x1 - x0):  # a portrait or a group, not a standing person
            continue
        alpha = cv2.GaussianBlur((mask[y0:y1, x0:x1] > 0).astype(np.float32), (0, 0), 1.0)
        people.append((cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2BGR), alpha))
    if not people:
        sys.exit(f"no person cutouts in {HUMAN_SEG}: this benchmark needs ../shared/data")
    return people


def person_height(foot_row: float) -> float:
    return 50.0 + (foot_row - 150.0) * (110.0 / 426.0)


class Walker:
    def __init__(self, rng: np.random.Generator, n_people: int, width: int, rows: tuple[int, int], fresh: bool):
        self.who = int(rng.integers(n_people))
        self.foot = float(rng.uniform(*rows))
        self.vx = float(rng.choice([-1, 1]) * rng.uniform(2, 5))
        self.x = float(rng.uniform(0, width)) if fresh else (-30.0 if self.vx > 0 else width + 30.0)


def paste(frame: np.ndarray, crop: np.ndarray, alpha: np.ndarray, cx: float, foot: float,
          owner: np.ndarray, who: int) -> tuple[np.ndarray, int] | None:
    """Pastes one walker; marks its pixels in `owner` (a nearer walker pasted later takes them over).
    Returns (its box clipped to the frame, its pixel count), or None when it is outside the frame."""
    h = int(round(person_height(foot)))
    w = max(4, int(round(crop.shape[1] * h / crop.shape[0])))
    c = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    x0, y0 = int(cx - w / 2), int(foot - h)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    sub = (slice(fy0, fy1), slice(fx0, fx1))
    cs = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    frame[sub] = (a[cs] * c[cs] + (1 - a[cs]) * frame[sub].astype(np.float32)).astype(np.uint8)
    body = a[cs][..., 0] > 0.5
    owner[sub][body] = who
    return np.array([fx0, fy0, fx1, fy1], np.float32), int(body.sum())


def write_crowd(out: Path, empty: np.ndarray, people: list, walkers: int, frames: int,
                seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Writes the clip; returns each pixel's share of frames covered by a walker, and each frame's true
    person boxes (walkers at least 40% visible, the rest hidden behind nearer ones)."""
    rng = np.random.default_rng(seed)
    height, width = empty.shape[:2]
    rows = (230, height - 2)
    crowd = [Walker(rng, len(people), width, rows, True) for _ in range(walkers)]
    cover_count = np.zeros(empty.shape[:2], np.float32)
    truth = []
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    for _ in range(frames):
        frame, owner = empty.copy(), np.full(empty.shape[:2], -1, np.int32)
        placed = {}
        for k in sorted(range(walkers), key=lambda k: crowd[k].foot):  # the nearer walk in front
            wk = crowd[k]
            got = paste(frame, *people[wk.who], wk.x, wk.foot, owner, k)
            if got is not None:
                placed[k] = got
            wk.x += wk.vx
            if wk.x < -40 or wk.x > width + 40:
                crowd[k] = Walker(rng, len(people), width, rows, False)
        vw.write(frame)
        cover_count += owner >= 0
        visible = np.bincount(owner[owner >= 0].ravel(), minlength=walkers)
        boxes = [box for k, (box, n) in placed.items() if n and visible[k] >= 0.4 * n]
        truth.append(np.array(boxes, np.float32).reshape(-1, 4))
    vw.release()
    return cover_count / frames, truth


def score_pseudo_labels(scene_dir: Path, truth: list[np.ndarray]) -> dict:
    """The scene's pseudo-labelled training frames against the walkers' true boxes."""
    from edge.eval import score_detections
    from edge.formats.yolo import load_yolo_labels
    from edge.types import Detections

    preds, gts = [], []
    for img in sorted((scene_dir / "frames" / "images").glob("*.jpg")):
        index = int(img.stem[1:])
        h, w = cv2.imread(str(img)).shape[:2]
        _, boxes = load_yolo_labels(img.parent.parent / "labels" / (img.stem + ".txt"), w, h)
        preds.append(Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes))))
        gts.append((np.zeros(len(truth[index]), np.int64), truth[index]))
    r = score_detections(preds, gts, conf=0.5)
    return {"frames": len(preds), "true_per_frame": round(r["n_gt"] / max(len(preds), 1), 1),
            "pseudo_per_frame": round(sum(len(p.xyxy) for p in preds) / max(len(preds), 1), 1),
            "P": round(r["box_precision"], 3), "R": round(r["box_recall"], 3), "count_mae": round(r["count_mae"], 2)}


def main(argv: list[str] | None = None) -> int:
    from edge.sampling import spread_indices
    from trainer.scene.evidence import WholePersonDetector
    from trainer.scene.plate import build_plate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walkers", type=int, default=45)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--gap", type=int, default=2, help="frames between a plate sample and its motion partner "
                    "(the scene stage: plate_motion_gap_s 0.2 s = 2 frames at 10 fps)")
    ap.add_argument("--scene", action="store_true", help="also run the scene stage with each plate method")
    ap.add_argument("--out", help="write results.json here")
    args = ap.parse_args(argv)
    empty = build_plate(VTEST, spread_indices(0, 795, 80), progress=False).image
    people = load_people(300)
    hog = WholePersonDetector()
    result: dict = {"walkers": args.walkers, "frames": args.frames, "cutouts": len(people)}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "crowd.avi"
        cover, truth = write_crowd(clip, empty, people, args.walkers, args.frames)
        busy = cover > 0.5
        result["busy_share"] = round(float(busy.mean()), 3)
        result["true_people_per_frame"] = round(float(np.mean([len(t) for t in truth])), 1)
        for method in ("median", "clean"):
            t0 = time.perf_counter()
            plate = build_plate(clip, spread_indices(0, args.frames, 80), progress=False, method=method, gap=args.gap)
            err = np.abs(plate.image.astype(np.int16) - empty.astype(np.int16)).max(axis=-1)
            row = {"seconds": round(time.perf_counter() - t0, 2), "unseen": round(plate.unseen, 3),
                   "error_busy_median": float(np.median(err[busy])),
                   "error_busy_p90": float(np.percentile(err[busy], 90)),
                   "error_elsewhere_median": float(np.median(err[~busy])),
                   "hog_people_on_plate": int(len(hog(plate.image)))}
            result[f"plate_{method}"] = row
            cv2.imwrite(str(Path(tmp) / f"plate_{method}.png"), plate.image)
            print(f"plate {method}: {row}")
        if args.out:
            out_dir = Path(args.out).parent
            out_dir.mkdir(parents=True, exist_ok=True)
            for method in ("median", "clean"):
                (out_dir / f"crowd_plate_{method}.png").write_bytes((Path(tmp) / f"plate_{method}.png").read_bytes())
        if args.scene:
            from trainer.scene.params import SceneParams
            from trainer.scene.run import build_scene
            for method in ("median", "clean"):
                summary = build_scene(clip, Path(tmp) / f"scene-{method}",
                                      SceneParams(accept_weak_evidence=True, plate=method), progress=False)
                ev = summary["evidence"]
                result[f"scene_{method}"] = {"verdict": ev["verdict"],
                                             "checks": {c["name"]: [c["value"], c["ok"]] for c in ev["checks"]},
                                             "people_per_frame": summary["people_per_scanned_frame"],
                                             "perspective": summary["perspective"],
                                             "pseudo_labels": score_pseudo_labels(Path(tmp) / f"scene-{method}", truth)}
                print(f"scene with plate {method}: {result[f'scene_{method}']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
