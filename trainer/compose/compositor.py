"""The compose loop: scene folder -> a YOLO detection set, a whole-frame person/no-person classification set,
compose.json (per-image provenance) and preview.png.

Deterministic under the seed: every image draws from its own generator seeded by (seed, split, index), so an
image does not depend on how many random numbers the ones before it used. Nothing is timed into the files
(timings are in the returned summary only), so the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge.atomic import atomic_write_text
from edge.detect.preprocess import squash
from edge.errors import CctvkitError
from edge.formats.yolo import format_yolo_labels, parse_yolo_labels, save_data_yaml
from edge.stages import SceneOut
from trainer.compose.blend import get_blend
from trainer.compose.blend.base import BlendFn
from trainer.compose.harmonize import (
    NoiseBank,
    PlateStats,
    apply_jitter,
    contact_shadow,
    harmonize,
    sample_jitter,
)
from trainer.compose.labels import Layer, big_enough, select_visible, visibility
from trainer.compose.params import ComposeParams
from trainer.compose.placement import FootSampler, plan_persons, render_cutout
from trainer.compose.preview import contact_sheet
from trainer.compose.scene import RealFrame, Scene, load_scene
from trainer.compose.split import split_by_time
from trainer.scene.distractors import paste

SPLITS = ("train", "val")
SPLIT_CODE = {"train": 1, "val": 2}
PREVIEW_N = 12
PLAN_ATTEMPTS = 3  # a composed image whose every person got rejected is re-planned this many times
CLS_JPEG_QUALITY = 95
EXTRA_NEGATIVE_BASE = 1_000_000  # index offset of classifier-only negatives: their seeds never meet images'
PLATE_STREAM = 0x91A7E  # the plate choice draws from its own generator: one plate gives the same images as ever
DISTRACTOR_STREAM = 0xD157  # so does the hard-negative choice: a scene without distractors composes as before


@dataclass(frozen=True)
class Job:
    split: str
    index: int  # within the split: names the files and seeds the image's generator
    source: str  # "composed" | "negative" | "real"
    real: RealFrame | None = None

    @property
    def name(self) -> str:
        return f"{self.index:05d}_{self.source}"

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index])

    def plate_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index, PLATE_STREAM])

    def distractor_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index, DISTRACTOR_STREAM])


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn("compose"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("compose", total=total)
        yield lambda: bar.advance(task)


def _plan_jobs(params: ComposeParams, real_pools: dict[str, list[RealFrame]]) -> list[Job]:
    n_val = min(max(1, round(params.n_images * params.val_fraction)), params.n_images - 1)
    jobs: list[Job] = []
    for split, n in (("train", params.n_images - n_val), ("val", n_val)):
        n_neg = round(n * params.negative_fraction)
        pool = real_pools[split]
        n_real = min(round(n * params.real_fraction), len(pool))
        n_comp = n - n_neg - n_real
        if n_comp < 1:  # tiny sets: a split without a single composite teaches nothing about persons
            n_neg, n_comp = max(0, n_neg - 1), n_comp + 1
        rng = np.random.default_rng([params.seed, SPLIT_CODE[split], 0x4EA1])
        picked = sorted(rng.choice(len(pool), n_real, replace=False).tolist()) if n_real else []
        sources = ["composed"] * n_comp + ["negative"] * n_neg
        jobs += [Job(split, i, s) for i, s in enumerate(sources)]
        jobs += [Job(split, len(sources) + k, "real", pool[i]) for k, i in enumerate(picked)]
    return jobs


class _Composer:
    """Holds what every image needs (scene, plate statistics, noise) and makes one image per call."""

    def __init__(self, scene: Scene, params: ComposeParams, blend: BlendFn, pools: dict[str, np.ndarray]):
        self.scene, self.p, self.blend, self.pools = scene, params, blend, pools
        self.sampler = FootSampler(
            scene.walkable, scene.perspective, params.min_person_px, str(scene.root / SceneOut.walkable.name)
        )
        # Backgrounds come from every scene segment's plate, as often as the segment is long: the detector
        # then sees each empty scene (day, night, cars parked or not) about as often as the camera does.
        self.plates = scene.plates or []
        weights = np.array([p.weight for p in self.plates], np.float64)
        self.plate_p = weights / weights.sum() if len(weights) else weights
        self.stats = [PlateStats(p.image) for p in self.plates] or [PlateStats(scene.plate)]
        self.noise = NoiseBank(scene.plate.shape[:2], params.seed)
        self.w, self.h = scene.size

    def _plate(self, job: Job) -> tuple[int, np.ndarray, dict[str, Any]]:
        """(index, image, record) of the background plate for this job."""
        if len(self.plates) < 2:
            return 0, self.scene.plate, {}
        k = int(job.plate_rng(self.p.seed).choice(len(self.plates), p=self.plate_p))
        return k, self.plates[k].image, {"plate": self.plates[k].file}

    def _distract(self, job: Job, img: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """With probability distractor_prob, one of the scene's non-person motions at its own place."""
        rng = job.distractor_rng(self.p.seed)
        if not self.scene.distractors or rng.random() >= self.p.distractor_prob:
            return img, {}
        d = self.scene.distractors[int(rng.integers(len(self.scene.distractors)))]
        return paste(img, d), {"distractor": d["file"]}

    def _place(self, rng: np.random.Generator, pool: np.ndarray) -> tuple[list, list[bool], list]:
        p, sc = self.p, self.scene
        for _ in range(PLAN_ATTEMPTS):
            n = int(rng.integers(p.persons_per_image[0], p.persons_per_image[1] + 1))
            plan = plan_persons(
                rng,
                self.sampler,
                sc.perspective,
                sc.cutouts,
                pool,
                n,
                p.scale_jitter,
                p.flip_prob,
                p.iou_limit,
                p.max_upscale,
            )
            rendered = [render_cutout(sc.cutouts[q.cutout], q) for q in plan]
            layers = [Layer(xy[0], xy[1], rgba[:, :, 3] * np.float32(1 / 255)) for rgba, xy in rendered]
            pre = visibility(layers, self.w, self.h)
            keep = select_visible(pre, p.min_visible_fraction, p.min_box_px)
            if any(keep):
                break
        return plan, keep, rendered

    def composed(self, job: Job) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        p, sc = self.p, self.scene
        rng = job.rng(p.seed)
        plan, keep, rendered = self._place(rng, self.pools[job.split])
        k, plate, plate_rec = self._plate(job)
        img, distractor = self._distract(job, plate.copy())  # under the persons: they may hide it
        layers: list[Layer] = []
        persons: list[dict[str, Any]] = []
        for q, kept, (rgba, xy) in zip(plan, keep, rendered, strict=True):
            cut = sc.cutouts[q.cutout]
            rec: dict[str, Any] = {
                "cutout": cut.file,
                "foot": list(q.foot),
                "target_height": round(q.target_height, 2),
                "scale": round(q.scale, 4),
                "flip": q.flip,
                "blend": p.blend,
            }
            persons.append(rec)
            if not kept:
                rec.update(pasted=False, reason="too hidden (occlusion or frame border) or too small")
                continue
            rgba, rec["harmonize"] = harmonize(rgba, self.stats[k], q.box, cut.box, p.harmonize_strength)
            img = contact_shadow(img, q.foot, q.target_height, p.shadow_strength)
            img, alpha = self.blend(img, rgba, xy)
            rec["pasted"] = True
            rec["_layer"] = len(layers)
            layers.append(Layer(xy[0], xy[1], alpha))
        post = visibility(layers, self.w, self.h)
        boxes = []
        for rec in persons:
            if "_layer" not in rec:
                continue
            v = post[rec.pop("_layer")]
            ok = big_enough(v, p.min_box_px)
            rec.update(
                box=list(v.box) if ok else None, visible_fraction=round(v.visible_fraction, 4), labelled=ok
            )
            if ok:
                boxes.append(v.box)
        jitter = sample_jitter(rng, p.jitter)
        img = apply_jitter(img, jitter, self.noise)
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        return img, xyxy, {**plate_rec, **distractor, "jitter": jitter, "persons": persons}

    def negative(self, job: Job) -> tuple[np.ndarray, dict[str, Any]]:
        """An empty-scene image: a segment's plate (drawn by segment length, as for composites), jittered."""
        jitter = sample_jitter(job.rng(self.p.seed), self.p.jitter)
        _, plate, plate_rec = self._plate(job)
        img, distractor = self._distract(job, plate)
        return apply_jitter(img, jitter, self.noise), {**plate_rec, **distractor, "jitter": jitter}


def _encode(img: np.ndarray, quality: int, path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CctvkitError("cannot encode JPEG", path)
    path.write_bytes(buf.tobytes())


def _real_labels(frame: RealFrame, w: int, h: int) -> np.ndarray:
    if not frame.label.exists():
        return np.zeros((0, 4), np.float32)
    cls, xyxy = parse_yolo_labels(frame.label.read_text(), w, h, str(frame.label))
    return xyxy[cls == 0]


def _make_dirs(out: Path) -> None:
    for split in SPLITS:
        for kind in ("images", "labels"):
            (out / "detect" / kind / split).mkdir(parents=True)
        for cls in ("person", "no_person"):
            (out / "classify" / split / cls).mkdir(parents=True)


def compose_dataset(
    scene_dir: Path, out_dir: Path, params: ComposeParams, progress: bool = True
) -> dict[str, Any]:
    """Write detect/, classify/, compose.json and preview.png into out_dir (created by the caller, empty).

    Every input is read and checked before the first file is written, so bad input leaves out_dir empty.
    """
    t0 = time.perf_counter()
    blend = get_blend(params.blend)
    scene = load_scene(scene_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise CctvkitError("output folder is not empty", out, "compose into a new, empty folder")
    split = split_by_time(
        [c.frame for c in scene.cutouts],
        [r.frame for r in scene.real],
        params.time_blocks,
        params.val_fraction,
    )
    pools = {s: np.array([i for i, t in enumerate(split.cutouts) if t == s], np.int64) for s in SPLITS}
    real_pools = {s: [r for r, t in zip(scene.real, split.real, strict=True) if t == s] for s in SPLITS}
    composer = _Composer(scene, params, blend, pools)  # checks walkable x perspective before writing
    jobs = _plan_jobs(params, real_pools)
    out.mkdir(parents=True, exist_ok=True)
    _make_dirs(out)
    w, h = scene.size
    det, cls_dir = out / "detect", out / "classify"
    records: list[dict[str, Any]] = []
    previews: list[tuple[np.ndarray, list, str]] = []
    cls_counts = {s: {"person": 0, "no_person": 0} for s in SPLITS}
    negatives_for_cls: dict[str, list[tuple[np.ndarray, dict]]] = {s: [] for s in SPLITS}
    n_labelled = n_dropped = 0

    with _progress(len(jobs), progress) as advance:
        for job in jobs:
            img_path = det / "images" / job.split / f"{job.name}.jpg"
            lbl_path = det / "labels" / job.split / f"{job.name}.txt"
            rec: dict[str, Any] = {
                "image": img_path.relative_to(out).as_posix(),
                "split": job.split,
                "source": job.source,
            }
            if job.source == "real":
                assert job.real is not None
                xyxy = _real_labels(job.real, w, h)
                shutil.copyfile(job.real.image, img_path)
                rec.update(
                    frame_file=job.real.image.relative_to(scene.root).as_posix(),
                    frame=job.real.frame,
                    n_labels=len(xyxy),
                    classify=None,
                )
            elif job.source == "negative":
                img, info = composer.negative(job)
                xyxy = np.zeros((0, 4), np.float32)
                _encode(img, info["jitter"]["jpeg_quality"], img_path)
                negatives_for_cls[job.split].append((squash(img, (params.cls_size, params.cls_size)), rec))
                rec.update(info, classify=None)
            else:
                img, xyxy, info = composer.composed(job)
                _encode(img, info["jitter"]["jpeg_quality"], img_path)
                rec.update(info, classify=None)
                n_labelled += len(xyxy)
                n_dropped += sum(1 for p in info["persons"] if not p.get("labelled"))
                if len(xyxy):
                    cpath = cls_dir / job.split / "person" / f"{job.name}.jpg"
                    _encode(squash(img, (params.cls_size, params.cls_size)), CLS_JPEG_QUALITY, cpath)
                    rec["classify"] = cpath.relative_to(out).as_posix()
                    cls_counts[job.split]["person"] += 1
                if job.split == "train" and len(previews) < PREVIEW_N:
                    previews.append((img, xyxy.tolist(), f"{job.name} ({len(xyxy)})"))
            lbl_path.write_text(format_yolo_labels(np.zeros(len(xyxy), np.int64), xyxy, w, h))
            rec["label"] = lbl_path.relative_to(out).as_posix()
            records.append(rec)
            advance()

    extras = _balance_classes(composer, params, cls_dir, out, negatives_for_cls, cls_counts)
    cv2.imwrite(str(out / "preview.png"), contact_sheet(previews))
    save_data_yaml(det / "data.yaml", ["person"], {"train": "images/train", "val": "images/val"})
    split_info = {
        "method": split.method,
        "val_blocks": split.val_blocks,
        "time_blocks": params.time_blocks,
        "cutouts": {s: len(pools[s]) for s in SPLITS},
        "cutouts_unused": sum(t is None for t in split.cutouts),
        "real_frames": {s: len(real_pools[s]) for s in SPLITS},
    }
    doc = {
        "version": 1,
        "params": params.model_dump(mode="json"),
        "split": split_info,
        "skipped_cutouts": scene.skipped_cutouts,
        "plates": [{"file": p.file, "weight": p.weight} for p in scene.plates],
        "images": records,
        "classify_extra_negatives": extras,
    }
    atomic_write_text(out / "compose.json", json.dumps(doc, indent=1))

    seconds = time.perf_counter() - t0
    counts = {
        s: {
            src: sum(1 for j in jobs if j.split == s and j.source == src)
            for src in ("composed", "negative", "real")
        }
        for s in SPLITS
    }
    return {
        "images": len(jobs),
        "distractors_pasted": sum(1 for r in records if r.get("distractor")),
        "counts": counts,
        "persons_labelled": n_labelled,
        "persons_dropped": n_dropped,
        "classify": cls_counts,
        "split": split_info,
        "blend": params.blend,
        "frame_size": [w, h],
        "seconds": round(seconds, 2),
        "images_per_s": round(len(jobs) / max(seconds, 1e-9), 1),
    }


def _balance_classes(
    composer: _Composer,
    params: ComposeParams,
    cls_dir: Path,
    out: Path,
    negatives: dict[str, list[tuple[np.ndarray, dict]]],
    counts: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    """no_person gets as many images as person in each split: the detection negatives first, then extra
    jittered plates written for the classifier only (the plate is the only person-free material we have)."""
    extras: list[dict[str, Any]] = []
    for split in SPLITS:
        want = counts[split]["person"]
        for small, rec in negatives[split][:want]:
            name = Path(rec["image"]).stem
            path = cls_dir / split / "no_person" / f"{name}.jpg"
            _encode(small, CLS_JPEG_QUALITY, path)
            rec["classify"] = path.relative_to(out).as_posix()
        for k in range(max(0, want - len(negatives[split]))):
            job = Job(split, EXTRA_NEGATIVE_BASE + k, "negative")
            img, info = composer.negative(job)
            path = cls_dir / split / "no_person" / f"{job.name}.jpg"
            _encode(squash(img, (params.cls_size, params.cls_size)), CLS_JPEG_QUALITY, path)
            extras.append(
                {"image": path.relative_to(out).as_posix(), "split": split, "source": "negative", **info}
            )
        counts[split]["no_person"] = min(want, len(negatives[split])) + max(0, want - len(negatives[split]))
    return extras
