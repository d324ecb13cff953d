"""`trainer`: the workstation half. `trainer demo` runs the whole path; each stage also runs on its own."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge.atomic import atomic_dir
from edge.config_errors import load_yaml_config
from edge.errors import CctvkitError, run_command
from edge.manifest import FILENAME, Manifest
from edge.stages import IMPORT
from trainer import pipeline
from trainer.budget import after_training_reserve
from trainer.config import PipelineConfig, quick_config
from trainer.relabel.teacher import TeacherFile

console = Console(stderr=True)
LABELS_HELP = ("YOLO folder (images/ + labels/) with real labels of frames of the same input, used ONLY to "
               "score the run on its held-out frames (never read by scene, compose or train)")


def _config(args: argparse.Namespace) -> PipelineConfig:
    if getattr(args, "config", None):
        cfg = load_yaml_config(args.config, PipelineConfig)
    else:
        cfg = quick_config() if getattr(args, "quick", False) else PipelineConfig()
    if getattr(args, "accept_weak_scene", False):
        cfg.scene = cfg.scene.model_copy(update={"accept_weak_evidence": True})
    return cfg


# `trainer demo --persons`: the compose.persons mix of each choice.
PERSON_MIXES: dict[str, dict[str, float]] = {"real": {"real": 1.0}, "generated": {"generated": 1.0},
                                             "both": {"real": 0.5, "generated": 0.5}}


def cmd_demo(args: argparse.Namespace) -> int:
    from trainer.demo_video import resolve_demo_video

    cfg = _config(args)
    if args.persons is not None:  # the flag wins over compose.persons of --config
        cfg.compose = cfg.compose.model_copy(update={"persons": PERSON_MIXES[args.persons]})
    runs_dir = Path(args.runs_dir)
    pipeline.check_writable(runs_dir)
    final = runs_dir / args.name
    if final.exists() and not args.force:
        raise CctvkitError("run directory already exists", final, "pass --name NEW or --force to replace it")
    t_start = time.perf_counter()
    video = resolve_demo_video(Path(args.video) if args.video else None)
    labels = _labels_dir(args)
    teacher = _teacher(args)
    budget = _demo_budget(args, cfg)  # too small for one epoch: said now, before any stage runs
    progress = not args.no_progress

    def train() -> dict:
        if budget is not None:
            left = budget - (time.perf_counter() - t_start) - after_training_reserve(budget)
            cfg.train = cfg.train.model_copy(update={"time_budget": f"{max(left, 1):.0f}s"})
            console.print(f"budget: {left:.0f} s of {args.budget} left for training")
        return pipeline.run_train(manifest, cfg, progress)
    # The run is built in a temp folder beside its final name and renamed only when every stage is done,
    # so runs/<name> never looks complete when it is not.
    with atomic_dir(final) as tmp:
        manifest = Manifest.create(tmp, args.name)
        manifest.save()
        stage_calls = [
            ("scene", lambda: _scene_then_labels(manifest, video, cfg, labels, progress, teacher)),
            *([("persons", lambda: pipeline.run_generated_persons(manifest, cfg, teacher, progress))]
              if "generated" in cfg.compose.person_shares() else []),
            ("compose", lambda: pipeline.run_compose(manifest, cfg, progress)),
            ("train", train),
            ("export", lambda: pipeline.run_export(manifest, cfg, progress)),
            ("bench", lambda: pipeline.run_eval(manifest, cfg, progress)),
        ]
        from export.verify import ExportCheckFailed

        check_failed: ExportCheckFailed | None = None
        for name, call in stage_calls:
            console.rule(f"[bold]{name}")
            try:
                entry = call()
            except ExportCheckFailed as e:  # models and report are written: finish the run, fail at the end
                check_failed, entry = e, manifest.stage(name)
            console.print(f"{name}: done in {entry['seconds']:.1f} s")
        manifest.data["seconds_total"] = round(time.perf_counter() - t_start, 1)
        manifest.save()
    print_summary(Manifest.load(final))
    if check_failed is not None:
        raise ExportCheckFailed(str(check_failed).replace(str(Path(tmp).resolve()), str(final.resolve())))
    return 0


DEMO_BUDGET = "15m"  # the README's promise for `make demo` on 2 CPU cores


def _demo_budget(args: argparse.Namespace, cfg: PipelineConfig) -> float | None:
    """--budget in seconds, checked against this machine's speed with the composed set's expected size.

    Without --budget the demo keeps to DEMO_BUDGET (the epochs follow this machine's speed: a slower day
    trains fewer), unless it is --quick or the config sets the training's epochs or time; `--budget off`
    trains the configured epochs whatever they take."""
    if args.budget is None:
        chosen = {"detector_epochs", "classifier_epochs", "time_budget"} & cfg.train.model_fields_set
        if getattr(args, "quick", False) or chosen:
            return None
        args.budget = DEMO_BUDGET
    if args.budget == "off":
        return None
    from trainer.budget import check_demo_budget, parse_budget

    total = parse_budget(args.budget)
    check_demo_budget(total, cfg)
    return total


def _labels_dir(args: argparse.Namespace) -> Path | None:
    """--labels of demo/scene: a YOLO folder of frames of the same input, for evaluation only."""
    if not getattr(args, "labels", None):
        return None
    path = Path(args.labels)
    if not path.is_dir():
        raise CctvkitError("labels folder not found", path, "pass --labels DIR (YOLO images/ + labels/)")
    return path


def _teacher(args: argparse.Namespace) -> TeacherFile | None:
    """--teacher MODEL [--teacher-metadata YAML], checked now: a bad teacher fails before a run is made."""
    if not getattr(args, "teacher", None):
        if getattr(args, "teacher_metadata", None):
            raise CctvkitError("--teacher-metadata needs --teacher", args.teacher_metadata,
                               "add --teacher MODEL, or drop --teacher-metadata")
        return None
    teacher = TeacherFile(Path(args.teacher), Path(args.teacher_metadata) if args.teacher_metadata else None)
    teacher.check()
    return teacher


def _scene_then_labels(manifest: Manifest, video: Path, cfg: PipelineConfig, labels: Path | None,
                       progress: bool, teacher: TeacherFile | None = None) -> dict:
    """The scene stage never sees the labels; right after it they are checked against the input (frames
    of the input? any in the held-out part?) and recorded for the evaluation stages, before training."""
    from edge.eval.holdout import record_run_labels

    entry = pipeline.run_scene(manifest, video, cfg, progress, teacher)
    if labels is not None:
        rec = record_run_labels(manifest, labels)
        console.print(f"real labels: {rec['held_out_labelled_frames']} labelled held-out frames will be scored "
                      f"({rec['labelled_frames_in_training_part']} labelled frames in the training part are not)")
    return entry


def print_summary(manifest: Manifest) -> None:
    from bench.report import holdout_table, stdout_console

    out = stdout_console()
    table = holdout_table(manifest.stage("bench")["summary"]["result"])
    evidence = manifest.stage("scene")["summary"].get("evidence") or {}
    if evidence.get("low_confidence"):  # the user went on past a weak scene: the table says so
        table.title = f"LOW CONFIDENCE (weak scene evidence: {', '.join(evidence['failed'])}) - {table.title or ''}"
    out.print(table)
    untrained = detector_learned_nothing(manifest.stage("bench")["summary"]["result"])
    if untrained:
        out.print(f"[bold red]{untrained}[/bold red]")
    times = Table(title="stage times")
    times.add_column("stage")
    times.add_column("seconds", justify="right")
    for name, entry in manifest.data["stages"].items():
        times.add_row(name, f"{entry['seconds']:.1f}")
    times.add_row("total", f"{manifest.data.get('seconds_total', 0):.1f}")
    out.print(times)
    out.print(f"run directory: {manifest.run_dir}  (manifest: {manifest.path})")


MIN_LEARNED_MAP50 = 0.05  # below this on a held-out set with people, a detector has learned nothing useful
MIN_BOXES_TO_JUDGE = 10


def detector_learned_nothing(result: dict) -> str | None:
    """One line when every detector scores (almost) nothing on held-out frames that do hold people: a budget
    too short for this machine, or labels too poor to learn from, must not look like a finished demo."""
    boxes = (result.get("data") or {}).get("boxes") or 0
    scores = [c.get("map50") for c in result.get("cells", []) if c.get("task") == "detect" and c.get("status") == "ok"]
    scores = [s for s in scores if s is not None]
    if boxes < MIN_BOXES_TO_JUDGE or not scores or max(scores) >= MIN_LEARNED_MAP50:
        return None
    return (f"the detector learned nothing usable: best mAP50 {max(scores):.3f} on {boxes} held-out boxes; "
            "train longer (--budget 30m, or --budget off for the config's epochs) or check the scene's labels "
            "(scene/overview.png)")


def _run_dir(args: argparse.Namespace) -> Path:
    """--run: a run directory (its manifest.json is taken for it); any other file is refused here, before
    a stage tries to make folders below it."""
    run = Path(args.run)
    if run.is_file() and run.name == FILENAME:
        return run.parent
    if run.exists() and not run.is_dir():
        raise CctvkitError("--run names a file, not a run directory", run,
                           "pass the run's folder (runs/<name>, the one holding manifest.json)")
    return run


RUN_NOT_WRITABLE = "make the run directory writable, or copy it to a writable place and pass that to --run"


def _open_run(args: argparse.Namespace) -> Manifest:
    """The existing run a stage writes into: loaded, and checked writable before the stage does its work."""
    run = _run_dir(args)
    manifest = Manifest.load(run)
    pipeline.check_writable(run, RUN_NOT_WRITABLE)
    return manifest


def _scene_into_run(args: argparse.Namespace, call: Callable[[Manifest], object]) -> None:
    """`trainer scene --run RUN`: into an existing run, or a new one that exists only once the scene is done
    (a bad video leaves no run behind; a folder that was there before is never removed)."""
    run = _run_dir(args)
    if (run / FILENAME).exists():
        call(_open_run(args))
    elif run.is_dir():  # the user's own (empty) folder: write_stage saves the manifest once the stage is done
        pipeline.check_writable(run, RUN_NOT_WRITABLE)
        call(Manifest.create(run, run.name))
    else:  # built beside its final name and renamed when complete, as `trainer demo` does
        pipeline.check_writable(run.parent, "pass a --run whose parent folder is writable")
        with atomic_dir(run) as tmp:
            call(Manifest.create(tmp, run.name))


def _export_options(p: argparse.ArgumentParser) -> None:
    from export.formats import formats_help

    p.add_argument("--formats", metavar="NAMES", help="comma-separated export formats, instead of the config's "
                   f"export.formats (ONNX is always exported) -- {formats_help()}")
    p.add_argument("--labels", help="YOLO images/ + labels/ folder to verify the exported models on "
                                    "(default: the run's held-out frames)")
    p.add_argument("--negatives", help="folder of person-free frames for the classifier's verification")
    p.add_argument("--max-drop", type=float, help="INT8 may lose at most this many mAP50-95 (classifier: "
                                                  "top-1 accuracy) points against FP32 PyTorch (default 2.0)")


def _apply_export_options(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    from export.formats import parse_formats

    formats = getattr(args, "formats", None)
    given = {"labels": getattr(args, "labels", None), "negatives": getattr(args, "negatives", None),
             "max_int8_drop": getattr(args, "max_drop", None),
             "formats": parse_formats(formats) if formats is not None else None}
    given = {k: v for k, v in given.items() if v is not None}
    if given:
        cfg.export = type(cfg.export).model_validate({**cfg.export.model_dump(), **given})


def cmd_stage(args: argparse.Namespace) -> int:
    cfg = _config(args)
    _apply_export_options(cfg, args)
    progress = not args.no_progress
    if args.stage == "scene":
        from trainer.demo_video import resolve_demo_video

        video = resolve_demo_video(Path(args.video) if args.video else None)
        labels, teacher = _labels_dir(args), _teacher(args)
        _scene_into_run(args, lambda m: _scene_then_labels(m, video, cfg, labels, progress, teacher))
    else:
        manifest = _open_run(args)
        {"compose": pipeline.run_compose, "train": pipeline.run_train, "export": pipeline.run_export,
         "bench": pipeline.run_eval}[args.stage](manifest, cfg, progress)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from trainer.importer import import_run

    m = import_run(Path(args.data), args.name, Path(args.runs_dir), Path(args.negatives) if args.negatives else None,
                   force=args.force, progress=not args.no_progress, val_fraction=args.val_fraction,
                   test_fraction=args.test_fraction, block_size=args.block_size, guard=args.guard,
                   cls_size=args.cls_size)
    s = m.stage(IMPORT.name)["summary"]
    det = ", ".join(f"{k} {v['frames']} frames/{v['boxes']} boxes" for k, v in s["detect"].items())
    console.print(f"imported {s['frames']} frames in {s['blocks']} blocks of {s['block_size']}: {det}")
    console.print(f"run directory: {m.run_dir}  (next: trainer train --run {m.run_dir})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the whole path on one video: scene, compose, train, export, bench")
    demo.add_argument("--video", help="fixed-camera video, frame folder or quoted glob ('cam/*.jpg') with people "
                                      "walking (default: OpenCV's vtest.avi)")
    demo.add_argument("--labels", help=LABELS_HELP)
    _teacher_options(demo)
    demo.add_argument("--name", default="demo", help="run name: outputs go to <runs-dir>/<name>/")
    demo.add_argument("--runs-dir", default="runs")
    demo.add_argument("--force", action="store_true", help="replace an existing run of that name")
    demo.add_argument("--budget", metavar="DURATION", help=f"wall-clock budget for the whole demo (default "
                      f"{DEMO_BUDGET}; 1h30m; off: the configured epochs): the training gets what scene and compose "
                      "leave, sized to this machine (trainer/budget.py); a config that sets train epochs turns "
                      "the default off")
    demo.add_argument("--persons", choices=tuple(PERSON_MIXES), help="persons pasted into the composed images: the "
                      "scene's real cutouts (the default: what measures best on CPU), generated ones (the generator "
                      "is trained on the scene's cutouts first: minutes on a CPU), or half of each "
                      "(config: compose.persons, persons)")
    _common(demo)
    demo.set_defaults(func=cmd_demo)

    for stage, text in (("scene", "frames, background plate, people, perspective, walkable area"),
                        ("compose", "composed YOLO and classifier data sets"),
                        ("train", "YOLO11n detector and person/no-person classifier"),
                        ("export", "FP32 + INT8 models (ONNX; ncnn and LiteRT by --formats or config), verified through "
                                   "the edge runtime"),
                        ("bench", "edge runtime on held-out frames: FPS, latency, accuracy")):
        p = sub.add_parser(stage, help=text)
        p.add_argument("--run", required=True, help="run directory (runs/<name>)")
        if stage == "scene":
            p.add_argument("--video", help="video, frame folder or quoted glob (default: OpenCV's vtest.avi)")
            p.add_argument("--labels", help=LABELS_HELP)
            _teacher_options(p)
        if stage == "export":
            _export_options(p)
        _common(p)
        p.set_defaults(func=cmd_stage, stage=stage)

    imp = sub.add_parser("import", help="a run from your own labelled frames (YOLO labels), split by time blocks")
    imp.add_argument("--data", required=True, help="folder with images/ and labels/ (YOLO txt, class 0 = person)")
    imp.add_argument("--negatives", help="folder of person-free frames for the classifier's no_person class")
    imp.add_argument("--name", required=True, help="run name: outputs go to <runs-dir>/<name>/")
    imp.add_argument("--runs-dir", default="runs")
    imp.add_argument("--val-fraction", type=float, default=0.2)
    imp.add_argument("--test-fraction", type=float, default=0.2, help="held-out test split (0: none)")
    imp.add_argument("--block-size", type=int, default=100, help="consecutive frames per time block")
    imp.add_argument("--guard", type=int, help="frames left out after a split boundary (default block-size/20)")
    imp.add_argument("--cls-size", type=int, default=224, help="side of the squashed classifier images")
    imp.add_argument("--force", action="store_true", help="replace an existing run of that name")
    imp.add_argument("--no-progress", action="store_true")
    imp.set_defaults(func=cmd_import)

    from trainer.diffusion.cli import add_persons_parser  # torch is imported only when a persons command runs

    add_persons_parser(sub)
    from trainer.experiment.cli import add_experiment_parser

    add_experiment_parser(sub)
    return parser


def _teacher_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", metavar="MODEL", help="teacher mode: a detector the edge runtime reads (.onnx or "
                   ".tflite with a 'person' class, e.g. ../shared/data/models/coco-yolo11n-640-int8w.tflite) "
                   "labels the real frames; the trained model is distilled from it (config: scene.teacher)")
    p.add_argument("--teacher-metadata", metavar="YAML", help="Ultralytics metadata.yaml with the class names of "
                   "a bare .tflite teacher")
    p.add_argument("--accept-weak-scene", action="store_true", help="go on when the scene's self-check finds its "
                   "evidence weak (a crowd that never clears, ...), marking the run low-confidence")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML with any of: scene, compose, train, export, eval")
    p.add_argument("--quick", action="store_true", help="a few-minute smoke run (numbers not meaningful)")
    p.add_argument("--no-progress", action="store_true")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
