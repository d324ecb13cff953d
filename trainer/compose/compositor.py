"""The compose loop: scene folder -> a YOLO detection set, a whole-frame person/no-person classification set,
compose.json (per-image provenance) and preview.png.

Deterministic under the seed: every image draws from its own generator seeded by (seed, split, index), so an
image does not depend on how many random numbers the ones before it used. Nothing is timed into the files
(timings are in the returned summary only), so the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge.atomic import atomic_write_text
from edge.errors import CctvkitError
from edge.formats.yolo import save_data_yaml
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
from trainer.compose.jobs import SPLITS, Job, balance_classes, plan_jobs
from trainer.compose.labels import Layer, big_enough, select_visible, visibility
from trainer.compose.maker import ImageMaker
from trainer.compose.params import PERSON_SOURCES, ComposeParams
from trainer.compose.persons import load_generated
from trainer.compose.placement import FootSampler, plan_persons, render_cutout
from trainer.compose.preview import contact_sheet
from trainer.compose.scene import Cutout, RealFrame, Scene, load_scene
from trainer.compose.split import SplitResult, split_by_time
from trainer.compose.workers import make_pool
from trainer.scene.distractors import paste

PREVIEW_N = 12
PLAN_ATTEMPTS = 3  # a composed image whose every person got rejected is re-planned this many times
CLASS_NAMES = {"merged": ["person"], "split": ["person", "person_synthetic"]}
MISSING_PERSONS_FIX = "run `trainer persons sample --run RUN` first, or set compose.persons: {real: 1.0}"

# One source's cutout indices in a split, with its share of the persons pasted there.
SourcePools = tuple[list[np.ndarray], list[float]]


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn("compose"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("compose", total=total)
        yield lambda: bar.advance(task)


class _Composer:
    """Holds what every image needs (scene, plate statistics, noise) and makes one image per call."""

    def __init__(self, scene: Scene, params: ComposeParams, blend: BlendFn, cutouts: list[Cutout],
                 pools: dict[str, SourcePools]):
        self.scene, self.p, self.blend, self.cutouts, self.pools = scene, params, blend, cutouts, pools
        self.class_of = {"real": 0, "generated": 1 if params.label_classes == "split" else 0}
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

    def _place(self, rng: np.random.Generator, pools: SourcePools) -> tuple[list, list[bool], list]:
        p, sc = self.p, self.scene
        for _ in range(PLAN_ATTEMPTS):
            n = int(rng.integers(p.persons_per_image[0], p.persons_per_image[1] + 1))
            plan = plan_persons(
                rng,
                self.sampler,
                sc.perspective,
                self.cutouts,
                pools[0],
                n,
                p.scale_jitter,
                p.flip_prob,
                p.iou_limit,
                p.max_upscale,
                pools[1],
            )
            rendered = [render_cutout(self.cutouts[q.cutout], q) for q in plan]
            layers = [Layer(xy[0], xy[1], rgba[:, :, 3] * np.float32(1 / 255)) for rgba, xy in rendered]
            pre = visibility(layers, self.w, self.h)
            keep = select_visible(pre, p.min_visible_fraction, p.min_box_px)
            if any(keep):
                break
        return plan, keep, rendered

    def composed(self, job: Job) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """(image, label boxes xyxy, their class ids, record)."""
        p = self.p
        rng = job.rng(p.seed)
        plan, keep, rendered = self._place(rng, self.pools[job.split])
        k, plate, plate_rec = self._plate(job)
        img, distractor = self._distract(job, plate.copy())  # under the persons: they may hide it
        layers: list[Layer] = []
        persons: list[dict[str, Any]] = []
        for q, kept, (rgba, xy) in zip(plan, keep, rendered, strict=True):
            cut = self.cutouts[q.cutout]
            rec: dict[str, Any] = {
                "source": cut.source,
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
        boxes, classes = [], []
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
                classes.append(self.class_of[rec["source"]])
        jitter = sample_jitter(rng, p.jitter)
        img = apply_jitter(img, jitter, self.noise)
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
        cls = np.asarray(classes, np.int64)
        return img, xyxy, cls, {**plate_rec, **distractor, "jitter": jitter, "persons": persons}

    def negative(self, job: Job) -> tuple[np.ndarray, dict[str, Any]]:
        """An empty-scene image: a segment's plate (drawn by segment length, as for composites), jittered."""
        jitter = sample_jitter(job.rng(self.p.seed), self.p.jitter)
        _, plate, plate_rec = self._plate(job)
        img, distractor = self._distract(job, plate)
        return apply_jitter(img, jitter, self.noise), {**plate_rec, **distractor, "jitter": jitter}


def _make_dirs(out: Path) -> None:
    for split in SPLITS:
        for kind in ("images", "labels"):
            (out / "detect" / kind / split).mkdir(parents=True)
        for cls in ("person", "no_person"):
            (out / "classify" / split / cls).mkdir(parents=True)


def _source_pools(params: ComposeParams, split: SplitResult, n_real: int, where: Path) -> dict[str, SourcePools]:
    """Per split, the cutout indices of each asked-for person source (generated ones follow the n_real real
    ones) and its share. A source with nothing in a split's time blocks gives its share to the others."""
    assigned = {"real": (0, split.cutouts), "generated": (n_real, split.generated)}
    shares = params.person_shares()
    out: dict[str, SourcePools] = {}
    for s in SPLITS:
        pools, weights = [], []
        for src, share in shares.items():
            offset, sides = assigned[src]
            pool = np.array([offset + i for i, t in enumerate(sides) if t == s], np.int64)
            if len(pool):
                pools.append(pool)
                weights.append(share)
        if not pools:
            raise CctvkitError(f"no {' or '.join(shares)} person falls in the {s} split's time blocks", where,
                               "sample generated persons from more of the scene's silhouettes, or add real to "
                               "compose.persons")
        out[s] = (pools, [w / sum(weights) for w in weights])
    return out


def _by_source(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Labelled persons of the composed images per split and source."""
    counts: dict[str, dict[str, int]] = {s: dict.fromkeys(PERSON_SOURCES, 0) for s in SPLITS}
    for r in records:
        for person in r.get("persons", []):
            if person.get("labelled"):
                counts[r["split"]][person["source"]] += 1
    return counts


@dataclass
class Prepared:
    """Everything an image is made from, derived from the inputs alone: a worker process rebuilds the same."""

    scene: Scene
    composer: _Composer
    split: SplitResult
    generated: list[Cutout]
    skipped_generated: list[str]
    real_pools: dict[str, list[RealFrame]]


def prepare_inputs(scene_dir: Path, params: ComposeParams, persons_dir: Path | None) -> Prepared:
    blend = get_blend(params.blend)
    scene = load_scene(scene_dir)
    generated: list[Cutout] = []
    skipped_generated: list[str] = []
    if "generated" in params.person_shares():
        if persons_dir is None:
            raise CctvkitError("compose.persons asks for generated persons but the run has no persons stage",
                               fix=MISSING_PERSONS_FIX)
        generated, skipped_generated = load_generated(persons_dir)
    split = split_by_time(
        [c.frame for c in scene.cutouts],
        [r.frame for r in scene.real],
        params.time_blocks,
        params.val_fraction,
        [c.frame for c in generated],
    )
    pools = _source_pools(params, split, len(scene.cutouts), Path(persons_dir or scene_dir))
    real_pools = {s: [r for r, t in zip(scene.real, split.real, strict=True) if t == s] for s in SPLITS}
    composer = _Composer(scene, params, blend, scene.cutouts + generated, pools)  # checks walkable x perspective
    return Prepared(scene, composer, split, generated, skipped_generated, real_pools)


def compose_dataset(
    scene_dir: Path, out_dir: Path, params: ComposeParams, progress: bool = True, persons_dir: Path | None = None
) -> dict[str, Any]:
    """Write detect/, classify/, compose.json and preview.png into out_dir (created by the caller, empty).
    persons_dir: the persons stage's folder, read only when compose.persons asks for generated persons.

    Every input is read and checked before the first file is written, so bad input leaves out_dir empty.
    The images are made by compose.workers processes; each image's generator is its own, so the files are
    the same whatever the number of workers.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise CctvkitError("output folder is not empty", out, "compose into a new, empty folder")
    prep = prepare_inputs(Path(scene_dir), params, persons_dir)
    scene, split, generated, real_pools = prep.scene, prep.split, prep.generated, prep.real_pools
    jobs = plan_jobs(params, real_pools)
    previews = frozenset((j.split, j.index) for j in [j for j in jobs if j.split == "train"
                                                       and j.source == "composed"][:PREVIEW_N])
    out.mkdir(parents=True, exist_ok=True)
    _make_dirs(out)
    w, h = scene.size
    det, cls_dir = out / "detect", out / "classify"
    records: list[dict[str, Any]] = []
    preview_list: list[tuple[np.ndarray, list, str]] = []
    cls_counts = {s: {"person": 0, "no_person": 0} for s in SPLITS}
    negatives_for_cls: dict[str, list[tuple[np.ndarray, dict]]] = {s: [] for s in SPLITS}
    n_labelled = n_dropped = 0
    maker = ImageMaker(prep, params, out, previews)
    with make_pool(maker, (Path(scene_dir), params, persons_dir, out, previews), params.workers, len(jobs)) as run, \
            _progress(len(jobs), progress) as advance:
        for job, res in zip(jobs, run("image", jobs), strict=True):
            rec = res["rec"]
            n_labelled += res["labels"]
            n_dropped += res["dropped"]
            if res["person_image"]:
                cls_counts[job.split]["person"] += 1
            if "small" in res:
                negatives_for_cls[job.split].append((res["small"], rec))
            if "preview" in res:
                preview_list.append(res["preview"])
            records.append(rec)
            advance()
        extras = balance_classes(lambda extra_jobs: run("extra_negative", extra_jobs), cls_dir, out,
                                 negatives_for_cls, cls_counts)
    previews_img = contact_sheet(preview_list)
    cv2.imwrite(str(out / "preview.png"), previews_img)
    save_data_yaml(det / "data.yaml", CLASS_NAMES[params.label_classes],
                   {"train": "images/train", "val": "images/val"})
    split_info: dict[str, Any] = {
        "method": split.method,
        "val_blocks": split.val_blocks,
        "time_blocks": params.time_blocks,
        "cutouts": {s: sum(t == s for t in split.cutouts) for s in SPLITS},
        "cutouts_unused": sum(t is None for t in split.cutouts),
        "real_frames": {s: len(real_pools[s]) for s in SPLITS},
    }
    if generated:
        split_info["generated_cutouts"] = {s: sum(t == s for t in split.generated) for s in SPLITS}
        split_info["generated_unused"] = sum(t is None for t in split.generated)
    by_source = _by_source(records)
    doc = {
        "version": 1,
        "params": params.model_dump(mode="json", exclude={"workers"}),  # how, not what: the files are the same
        "split": split_info,
        "skipped_cutouts": scene.skipped_cutouts,
        "skipped_generated": prep.skipped_generated,
        "plates": [{"file": p.file, "weight": p.weight} for p in scene.plates],
        "persons_by_source": by_source,
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
        "persons_by_source": by_source,
        "classify": cls_counts,
        "split": split_info,
        "blend": params.blend,
        "frame_size": [w, h],
        "seconds": round(seconds, 2),
        "images_per_s": round(len(jobs) / max(seconds, 1e-9), 1),
    }
