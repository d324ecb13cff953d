"""What each stage of a run writes into its folder (runs/<name>/<stage>/), declared once.

A stage's writer collects what it recorded through its declaration (Stage.collect), and its readers name
the outputs by the same declaration (SceneOut.plate.name), so a file name is spelled in one place and
writer and readers agree by construction. The pipelines (the order the stages run in) say which stages a
re-run makes stale and when a run is complete.

This lives in edge, the lowest layer, because every layer reads stage outputs through the manifest: edge's
evaluation reads the scene's holdout, export and train read the data set, bench the held-out frames.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge.errors import CctvkitError

BUG = "this is a bug in the stage's writer or in edge/stages.py: report it"


@dataclass(frozen=True)
class Output:
    """One file or folder of a stage folder; the manifest records it under its name."""

    name: str  # a glob ("detector-round-*.pt") declares numbered files of one kind
    kind: Literal["file", "folder"]
    required: bool = True  # False: the stage writes it only in some modes
    old_runs_lack: bool = False  # added later: readers take it only where the manifest records it

    def matches(self, key: str) -> bool:
        return fnmatch.fnmatchcase(key, self.name) if "*" in self.name else key == self.name


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: tuple[Output, ...] = ()
    closed: bool = True  # its folder holds exactly the declared outputs (nothing else is left behind)
    open: bool = False  # outputs named by what was made (export's model files, bench's reports): any name

    def declared(self, key: str) -> Output | None:
        return next((o for o in self.outputs if o.matches(key)), None)

    def collect(self, folder: Path) -> dict[str, Path]:
        """Every declared output found in `folder` (the stage's folder, temp or final), by its name."""
        found = {p.name: p for p in sorted(Path(folder).iterdir())}
        out = {k: p for k, p in found.items() if self.declared(k) is not None}
        if self.closed and not self.open and len(out) != len(found):
            extra = sorted(set(found) - set(out))
            raise CctvkitError(f"stage '{self.name}' wrote {', '.join(extra)}, which it does not declare",
                               folder, BUG)
        self.check(out, folder)
        return out

    def check(self, outputs: Mapping[str, Path], where: Path | None = None) -> None:
        """The outputs a writer records: each declared, of its declared kind, and none required missing."""
        if self.open:
            return
        for key, path in outputs.items():
            decl = self.declared(key)
            if decl is None:
                raise CctvkitError(f"stage '{self.name}' records '{key}', which it does not declare", path, BUG)
            if (decl.kind == "folder") != Path(path).is_dir():
                raise CctvkitError(f"stage '{self.name}' output '{key}' is not a {decl.kind}", path, BUG)
        missing = [o.name for o in self.outputs if o.required and "*" not in o.name and o.name not in outputs]
        if missing:
            raise CctvkitError(f"stage '{self.name}' did not write {', '.join(missing)}", where, BUG)


def _outputs(namespace: type) -> tuple[Output, ...]:
    return tuple(v for v in vars(namespace).values() if isinstance(v, Output))


class SceneOut:
    """scene/ (trainer/scene/run.py): the plate, the scene's geometry, person cutouts, real frames."""

    plate = Output("plate.png", "file")
    plates = Output("plates", "folder")  # one plate per segment, listed in scene.json
    walkable = Output("walkable.png", "file")
    perspective = Output("perspective.json", "file")
    cutouts = Output("cutouts", "folder")
    cutouts_json = Output("cutouts.json", "file")
    distractors = Output("distractors", "folder", old_runs_lack=True)
    distractors_json = Output("distractors.json", "file", old_runs_lack=True)
    frames = Output("frames", "folder")  # pseudo-labelled real training frames (YOLO images/ + labels/)
    holdout = Output("holdout", "folder")  # the held-out last part of the input, pseudo-labelled
    scene_json = Output("scene.json", "file")
    overview = Output("overview.png", "file")
    frame_keys = Output("frame_keys.json", "file")  # every input frame's key, for matching real labels


class DataSetOut:
    """The data sets `trainer train` reads, made by compose or by `trainer import`."""

    detect = Output("detect", "folder")  # YOLO detection set with data.yaml
    classify = Output("classify", "folder")  # person / no_person classification set


class ComposeOut(DataSetOut):
    compose_json = Output("compose.json", "file")
    preview = Output("preview.png", "file")


class ImportOut(DataSetOut):
    import_json = Output("import.json", "file")  # the time blocks and which frame went to which split
    holdout = Output("holdout", "folder", required=False)  # the test split with the user's labels


class GeneratorOut:
    """generator/ (`trainer persons train --run`): the mask-conditioned person generator trained on this
    scene's cutouts (trainer/diffusion). Its folder is the diffusion trainer's run folder."""

    checkpoint = Output("last.pt", "file")
    loss_csv = Output("loss.csv", "file", required=False)
    loss_png = Output("loss.png", "file", required=False)
    samples = Output("samples", "folder", required=False)
    generator_json = Output("generator.json", "file")  # what it was trained on, at what size, for how long
    config = Output("config.json", "file", required=False)  # the trainer's full config (also inside last.pt)


class PersonsOut:
    """persons/ (`trainer persons sample --run`): generated RGBA person cutouts that passed the quality gate.

    persons.json (version 1) is the one index compose reads:
      {"version": 1,
       "cutouts": [{"file": "cutouts/00001.png",   # relative to persons/, RGBA, cropped to the person
                    "frame": 412,                  # source frame of the scene silhouette it was conditioned on
                    "silhouette": "cutouts/000123.png",  # that scene cutout (relative to scene/)
                    "flipped": false,
                    "foot": [x, y],                # foot point inside the crop
                    "height_px": 87.0,             # the person's height in the crop
                    "gate_conf": 0.71}],           # the gate detector's confidence where it was pasted
       "rejected": [...same fields...],
       "gate": {"by": "detector" | "teacher" | "hog", "model": "path or null", "conf": 0.3,
                "sampled": N, "kept": K, "rejected_share": 0.2},
       "generator": {"checkpoint": "...", "sha256": "...", "size": [w, h], "sampler": "ddim", "steps": 25}}
    """

    cutouts = Output("cutouts", "folder")  # the kept cutouts only
    rejected = Output("rejected", "folder", required=False)  # what the gate refused, for the contact sheet
    persons_json = Output("persons.json", "file")
    contact_sheet = Output("contact_sheet.png", "file")  # kept and rejected, side by side


class TrainOut:
    detector = Output("detector.pt", "file")
    classifier = Output("classifier.pt", "file")
    plots = Output("plots", "folder")
    self_training = Output("self-training", "folder", required=False)
    detector_rounds = Output("detector-round-*.pt", "file", required=False)


def _all(namespace: type) -> tuple[Output, ...]:
    seen: dict[str, Output] = {}
    for cls in reversed(namespace.__mro__):
        seen.update({o.name: o for o in _outputs(cls)})
    return tuple(seen.values())


SCENE = Stage("scene", _all(SceneOut))
COMPOSE = Stage("compose", _all(ComposeOut))
IMPORT = Stage("import", _all(ImportOut))
GENERATOR = Stage("generator", _all(GeneratorOut), closed=False)  # periodic checkpoints come and go
PERSONS = Stage("persons", _all(PersonsOut))
TRAIN = Stage("train", _all(TrainOut), closed=False)  # Ultralytics may leave files it was not asked for
EXPORT = Stage("export", open=True)  # one output per model file (export/stage.py names them)
BENCH = Stage("bench", open=True)  # the report files of bench/report.py
STAGES = {s.name: s for s in (SCENE, GENERATOR, PERSONS, COMPOSE, IMPORT, TRAIN, EXPORT, BENCH)}

# What compose reads of the scene folder (not the holdout, the frame keys or the overview).
COMPOSE_READS = (SceneOut.plate, SceneOut.walkable, SceneOut.perspective, SceneOut.cutouts, SceneOut.cutouts_json,
                 SceneOut.frames, SceneOut.plates, SceneOut.scene_json, SceneOut.distractors,
                 SceneOut.distractors_json)

# A run goes one of these ways; bench scores on the scene's holdout, so an imported run ends at export
# (`bench run --labels` scores it on its test split).
# The generated persons are optional: the third route only says what they build on and what they make stale.
PIPELINES: tuple[tuple[str, ...], ...] = (("scene", "compose", "train", "export", "bench"),
                                          ("import", "train", "export"),
                                          ("scene", "generator", "persons", "compose", "train", "export", "bench"))
MODELS_STAGE = "export"  # the manifest's "models" are this stage's files
DATASET_STAGES = ("compose", "import")


def before(stage: str) -> set[str]:
    """The stages `stage` builds on: those ahead of it in any pipeline it belongs to."""
    return {s for p in PIPELINES if stage in p for s in p[:p.index(stage)]}


def stale_after(stage: str, present: Iterable[str]) -> list[str]:
    """The stages of `present` that recording `stage` makes stale: every declared stage it does not build
    on (the later stages of its pipeline, and those of the other route: a scene recorded over an import)."""
    if stage not in STAGES:
        return []
    upstream = before(stage)
    return [s for s in present if s != stage and s in STAGES and s not in upstream]


def is_complete(present: Iterable[str]) -> bool:
    names = set(present)
    return any(names >= set(p) for p in PIPELINES)


def dataset_stage(stages: Mapping[str, Any]) -> str:
    """The stage whose detect/ and classify/ training reads: "import" in an imported run, else "compose"
    (whose absence then makes the reader's error name `trainer compose`)."""
    return "import" if "import" in stages else "compose"
