"""What each arm trains on, made into a normal run directory (manifest + the compose stage `trainer train`
reads). Training, export and scoring are the same calls for every arm (run.py).

    real            `trainer import` of the labelled frames with the experiment's split parameters (the same
                    rule gives the same split; checked against split.json), so it trains on the train split's
                    real labels and validates on the val split's
    label-free      the train + val frames as a frame folder, no labels -> scene -> compose
    synthetic-only  the same scene, compose with real_fraction 0: composed images and plates only
    teacher         label-free's recipe in its own scene run (scene-teacher/): a teacher model labels the real
                    frames (teacher mode), fused with the finder; no labels
    generated-N     label-free's recipe with N % of the composed persons generated: a person generator trained on
                    scene-base's cutouts, its samples gated (trainer/diffusion/stage.py; the teacher is the gate
                    when the experiment has one, else HOG), composed with compose.persons {real: 1-N%, generated: N%}
    hybrid-N        label-free's composed set plus N % of the real labelled TRAIN frames (evenly spread),
                    with their labels, added to detect/images/train (the classifier set is label-free's)

The scene stage and label-free's compose run once, in <experiment>/scene-base/, and are hard-linked into
every arm that uses them (with their manifest entries, so each arm's manifest is complete on its own).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.stages import IMPORT, ImportOut
from trainer import pipeline
from trainer.config import PipelineConfig
from trainer.importer import import_run, link_or_copy
from trainer.relabel.teacher import TeacherFile

from .config import generated_percent, hybrid_percent
from .split import ExperimentSplit, pick_evenly


@dataclass
class ArmData:
    """An arm's run directory with its compose stage, and what the report says about its training data."""

    manifest: Manifest
    description: str
    real_label_percent: int | None  # x of the ratio curve: 0 label-free, N hybrid-N, 100 real; None: off it
    sources: list[str] = field(default_factory=list)  # source frames (relative to data/) it trains on
    extra: dict[str, Any] = field(default_factory=dict)


def write_frame_folder(split: ExperimentSplit, out: Path) -> int:
    """The train + val frames, images only, hard-linked into `out` as 000000__name.jpg ...: name order is
    time order whatever the source names. Guard-band and test frames are left out. No label is read."""
    frames = split.of("train", "val")
    for i, f in enumerate(frames):
        link_or_copy(f.image, out / f"{i:06d}__{split.flat(f)}")
    return len(frames)


def copy_stage(src: Manifest, dst: Manifest, stage: str) -> None:
    """Hard-link src's stage folder into dst and copy its manifest entry (paths in it are relative to the
    run directory, hashes unchanged), so dst's later stages read it through dst's manifest as usual."""
    root = src.run_dir / stage
    for p in root.rglob("*"):
        if p.is_file():
            link_or_copy(p, dst.run_dir / stage / p.relative_to(root))
        elif p.is_dir():  # an empty output folder is an output too (scene/distractors/ of a scene without any)
            (dst.run_dir / stage / p.relative_to(root)).mkdir(parents=True, exist_ok=True)
    entry = copy.deepcopy(src.stage(stage))
    entry["summary"]["shared_from"] = str(src.run_dir)
    dst.data["stages"][stage] = entry
    dst.save()


class SceneBase:
    """scene + label-free compose, run once on the frame folder, in <experiment>/scene-base/; a failure is
    kept and re-raised for every arm that needs it (one reason, not N retries)."""

    def __init__(self, exp: Path, split: ExperimentSplit, cfg: PipelineConfig, progress: bool,
                 teacher: TeacherFile | None = None, name: str = "scene-base", generated: bool = False,
                 gate_teacher: TeacherFile | None = None):
        self.exp, self.split, self.cfg, self.progress = exp, split, cfg, progress
        self.teacher, self.name = teacher, name
        self.generated, self.gate_teacher = generated, gate_teacher  # generated-N arms: generator + persons
        self._manifest: Manifest | None = None
        self._error: Exception | None = None
        self.info: dict[str, Any] = {}

    def get(self) -> Manifest:
        if self._error is not None:
            raise self._error
        if self._manifest is None:
            try:
                self._manifest = self._build()
            except Exception as e:
                self._error = e
                raise
        return self._manifest

    def _build(self) -> Manifest:
        folder = self.exp / "frames"
        n = len(list(folder.iterdir())) if folder.is_dir() else write_frame_folder(self.split, folder)
        m = Manifest.create(self.exp / self.name, self.name)
        m.run_dir.mkdir(parents=True, exist_ok=True)
        m.save()
        pipeline.run_scene(m, folder, self.cfg, self.progress, self.teacher)  # it reads a frame folder
        if self.generated:  # before compose: recording them after it would make compose stale
            pipeline.run_generated_persons(m, self.cfg, self.gate_teacher, self.progress)
        pipeline.run_compose(m, self.cfg, self.progress)
        self.info = {"frame_folder": str(folder), "frames": n}
        return m


def _new_run(arm_dir: Path, arm: str) -> Manifest:
    m = Manifest.create(arm_dir, arm)
    arm_dir.mkdir(parents=True, exist_ok=True)
    m.save()
    return m


def _counts(m: Manifest) -> dict[str, int]:
    c = m.stage("compose")["summary"]["counts"]["train"]
    return {k: int(c.get(k, 0)) for k in ("composed", "negative", "real")}


def prepare_real(arm_dir: Path, split: ExperimentSplit, cfg: PipelineConfig, progress: bool) -> ArmData:
    p = split.params  # test_fraction 0 with a test clip (make_split): the import is then train/val only
    m = import_run(split.data, arm_dir.name, arm_dir.parent, split.neg_root, force=True, progress=progress,
                   val_fraction=p.val_fraction, test_fraction=p.test_fraction, block_size=p.block_size,
                   guard=p.resolved_guard, cls_size=cfg.compose.cls_size)
    listing = m.output(IMPORT.name, ImportOut.import_json.name)
    doc = json.loads(listing.read_text())
    for s in ("train", "val", "test"):  # with a test clip: no test split here, and none in data's split
        if doc["splits"].get(s, []) != split.names(s):  # the import's own split must be the experiment's
            raise CctvkitError(f"trainer import split the {s} frames differently from split.json",
                               listing, "this is a bug: report it")
    train, val = doc["splits"]["train"], doc["splits"]["val"]
    negs = [n for s in ("train", "val") for n in doc.get("negative_splits", {}).get(s, [])]
    return ArmData(m, f"{len(train)} real frames with their labels (train split; {len(val)} val frames)",
                   100, sources=train + val + negs)


def prepare_scene_arm(arm: str, arm_dir: Path, base: SceneBase, cfg: PipelineConfig, progress: bool) -> ArmData:
    src = base.get()
    m = _new_run(arm_dir, arm)
    copy_stage(src, m, "scene")
    sources = base.split.names("train", "val")  # the frame folder, images only
    extra = {"scene_shared_from": str(src.run_dir), **base.info}
    if arm == "synthetic-only":
        only = cfg.model_copy(deep=True)
        only.compose = type(cfg.compose).model_validate({**cfg.compose.model_dump(), "real_fraction": 0.0})
        pipeline.run_compose(m, only, progress)
        c = _counts(m)
        return ArmData(m, f"{c['composed']} composed images + {c['negative']} empty plates; no real frames, "
                          "no labels", None, sources, extra)
    gen = generated_percent(arm)
    if gen is not None:
        return prepare_generated(m, src, gen, cfg, progress, sources, extra)
    copy_stage(src, m, "compose")
    evidence = src.stage("scene")["summary"].get("evidence") or {}
    if evidence.get("low_confidence"):
        extra["low_confidence"] = evidence["failed"]
    c = _counts(m)
    desc = (f"{c['composed']} composed + {c['negative']} empty plates + {c['real']} pseudo-labelled real "
            "frames; no labels")
    if arm == "label-free":
        return ArmData(m, desc, 0, sources, extra)
    if arm == "teacher":
        t = src.stage("scene")["summary"]["teacher"]
        desc = (f"{c['composed']} composed + {c['negative']} empty plates + {c['real']} real frames labelled by "
                f"the teacher ({Path(t['teacher']['path']).name}, {t['labels'].split(':')[0]}, fuse {t['fuse']}); "
                "no labels")
        return ArmData(m, desc, None, sources, extra)
    percent = hybrid_percent(arm)
    assert percent is not None
    chosen = add_real_labels(m, base.split, percent)
    n_train = len(base.split.of("train"))
    extra["hybrid_frames"] = chosen
    return ArmData(m, f"label-free ({desc}) + {len(chosen)} real labelled train frames ({percent} % of "
                      f"{n_train})", percent, sources + chosen, extra)


def prepare_generated(m: Manifest, src: Manifest, percent: int, cfg: PipelineConfig, progress: bool,
                      sources: list[str], extra: dict[str, Any]) -> ArmData:
    """generated-N: scene-base's generator and gated persons, composed with N % of the persons generated."""
    for stage in ("generator", "persons"):
        copy_stage(src, m, stage)
    mix = {"real": 1 - percent / 100, "generated": percent / 100} if percent < 100 else {"generated": 1.0}
    arm_cfg = cfg.model_copy(deep=True)
    arm_cfg.compose = type(cfg.compose).model_validate({**cfg.compose.model_dump(), "persons": mix})
    pipeline.run_compose(m, arm_cfg, progress)
    c = _counts(m)
    by = m.stage("compose")["summary"]["persons_by_source"]["train"]
    gate = m.stage("persons")["summary"]["gate"]
    extra["persons_gate"] = gate
    extra["persons_by_source"] = by
    return ArmData(m, f"{c['composed']} composed ({by.get('generated', 0)} generated + {by.get('real', 0)} real "
                      f"persons; gate {gate['by']} kept {gate['kept']} of {gate['sampled']}) + {c['negative']} empty "
                      f"plates + {c['real']} pseudo-labelled real frames; no labels", None, sources, extra)


def add_real_labels(m: Manifest, split: ExperimentSplit, percent: int) -> list[str]:
    """Add percent % of the real labelled train frames (evenly spread) to the arm's detect train set and
    re-record its compose stage (new hashes, the frames named in params and summary)."""
    t0 = time.perf_counter()
    chosen = pick_evenly(split.of("train"), percent)
    det = m.run_dir / "compose" / "detect"
    for f in chosen:
        name = f"real-label__{split.flat(f)}"
        link_or_copy(f.image, det / "images" / "train" / name)
        label = det / "labels" / "train" / f"{Path(name).stem}.txt"
        if f.label is not None:
            link_or_copy(f.label, label)
        else:
            label.write_text("")  # no label file: a frame with no person
    entry = m.stage("compose")
    names = [split.rel(f) for f in chosen]
    hybrid = {"percent": percent, "frames": len(chosen), "boxes": sum(f.boxes for f in chosen),
              "of_train_frames": len(split.of("train")), "added_to": "compose/detect/images/train",
              "sources": names}
    m.record_stage("compose", params={**entry["params"], "hybrid_real_percent": percent},
                   inputs={k: m.run_dir / v["path"] for k, v in entry["inputs"].items()},
                   outputs={k: m.run_dir / v["path"] for k, v in entry["outputs"].items()},
                   seconds=entry["seconds"] + time.perf_counter() - t0,
                   summary={**entry["summary"], "hybrid": hybrid})
    m.save()
    return names


def prepare_arm(arm: str, arm_dir: Path, split: ExperimentSplit, bases: dict[str, SceneBase], cfg: PipelineConfig,
                progress: bool) -> ArmData:
    """bases: the shared scene runs, "label-free" (scene-base/) and, in teacher mode, "teacher"."""
    if arm == "real":
        return prepare_real(arm_dir, split, cfg, progress)
    return prepare_scene_arm(arm, arm_dir, bases["teacher" if arm == "teacher" else "label-free"], cfg, progress)
