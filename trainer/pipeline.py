"""The stages of one run, each reading its inputs through the manifest and recording its outputs in it.

Each stage writes its folder under the run directory through a temp folder renamed at the end, then saves
the manifest (also atomically), so a stage folder that exists under its final name is complete
(Manifest.write_stage). What each stage writes is declared once in edge/stages.py; writers collect their
outputs and readers name them through those declarations.
Heavy imports (torch, ultralytics) happen inside the stages that need them: `trainer --help` stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_text
from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.stages import (
    COMPOSE,
    COMPOSE_READS,
    PERSONS,
    SCENE,
    DataSetOut,
    PersonsOut,
    SceneOut,
    TrainOut,
    dataset_stage,
)
from trainer.config import EvalParams, PipelineConfig
from trainer.relabel.teacher import TeacherFile


def _timed_stage(manifest: Manifest, stage: str, body: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The export stage's way in (it moves to export/stage.py); every stage now writes through
    Manifest.write_stage."""
    return manifest.write_stage(stage, body)


def run_scene(manifest: Manifest, video: Path, cfg: PipelineConfig, progress: bool = True,
              teacher: TeacherFile | None = None) -> dict[str, Any]:
    """teacher: teacher mode, its boxes label the real frames (checked before the stage writes anything)."""
    from trainer.relabel.teacher import Teacher
    from trainer.scene.run import build_scene

    if teacher is not None:
        teacher.check()
    ext = {"video": _hashable(video), **(teacher.inputs() if teacher else {})}

    def body(out: Path) -> dict[str, Any]:
        model = (Teacher.load(teacher.path, teacher.metadata, low_conf=cfg.scene.teacher.tracking.low_conf,
                              threads=cfg.scene.teacher.threads) if teacher else None)
        summary = build_scene(video, out, cfg.scene, progress=progress, teacher=model)
        write_frame_keys(video, summary, out / SceneOut.frame_keys.name)
        return {"params": cfg.scene.model_dump(), "outputs": SCENE.collect(out), "external_inputs": ext,
                "summary": summary}

    return manifest.write_stage(SCENE.name, body)


def _hashable(video: Path) -> Path:
    """What the manifest hashes for an input: the file or folder; for a glob, the folder its frames share."""
    from trainer.scene.frames import frame_files, input_kind

    if input_kind(video) != "glob":
        return video
    return Path(os.path.commonpath([str(p.parent) for p in frame_files(video) or []]))


def write_frame_keys(video: Path, summary: dict[str, Any], path: Path) -> None:
    """Every input frame's key (frame folders: the file stem; videos: the frame index) and where the
    held-out part starts: what real labels are matched against (edge/eval/holdout.py), without the
    scene stage ever reading them."""
    from trainer.scene.frames import frame_files

    files = frame_files(video)
    n = int(summary["video"]["frame_count"])
    keys = [p.stem for p in files] if files is not None else [str(i) for i in range(n)]
    held = summary["split"]["holdout_frames"]
    doc = {"kind": "video" if files is None else "folder", "keys": keys,
           "holdout_start": int(held[0]) if held else n}
    atomic_write_text(path, json.dumps(doc) + "\n")


def run_generated_persons(manifest: Manifest, cfg: PipelineConfig, teacher: TeacherFile | None = None,
                          progress: bool = True) -> dict[str, Any]:
    """The generator and persons stages, as cfg.persons says (the gate uses the teacher when given); the
    pipeline runs them between scene and compose when compose.persons asks for generated persons."""
    from trainer.diffusion.defaults import load_config
    from trainer.diffusion.stage import preset_for, run_generator, run_persons

    p = cfg.persons
    over: dict[str, Any] = {"train": {"steps": p.steps, "seed": p.seed} if p.steps else {"seed": p.seed}}
    gen_cfg = load_config(None, preset_for(cfg.train.device) if p.preset == "auto" else p.preset, over)
    run_generator(manifest, gen_cfg, Path(p.extra_data) if p.extra_data else None, device=cfg.train.device,
                  progress=progress)
    return run_persons(manifest, p.n, teacher=teacher, gate_conf=p.gate_conf, steps=p.sample_steps, seed=p.seed,
                       device=cfg.train.device, progress=progress, gate_off=p.gate == "off")


def run_compose(manifest: Manifest, cfg: PipelineConfig, progress: bool = True) -> dict[str, Any]:
    from trainer.compose.compositor import MISSING_PERSONS_FIX, compose_dataset

    recorded = manifest.stage(SCENE.name)["outputs"]
    inputs = {o.name: manifest.output(SCENE.name, o.name) for o in COMPOSE_READS
              if not o.old_runs_lack or o.name in recorded}
    scene_dir = inputs[SceneOut.plate.name].parent  # compose reads the folder these files share
    persons_dir = None
    if "generated" in cfg.compose.person_shares():  # the persons stage is read only when asked for
        if PERSONS.name not in manifest.data["stages"]:
            raise CctvkitError("compose.persons asks for generated persons but the run has no persons stage",
                               manifest.path, MISSING_PERSONS_FIX)
        inputs[PersonsOut.persons_json.name] = manifest.output(PERSONS.name, PersonsOut.persons_json.name)
        inputs["persons_cutouts"] = manifest.output(PERSONS.name, PersonsOut.cutouts.name)
        persons_dir = inputs[PersonsOut.persons_json.name].parent

    def body(out: Path) -> dict[str, Any]:
        summary = compose_dataset(scene_dir, out, cfg.compose, progress=progress, persons_dir=persons_dir)
        return {"params": cfg.compose.model_dump(), "inputs": inputs, "outputs": COMPOSE.collect(out),
                "summary": summary}

    return manifest.write_stage(COMPOSE.name, body)


def run_train(manifest: Manifest, cfg: PipelineConfig, progress: bool = True) -> dict[str, Any]:
    from trainer.relabel.selftrain import self_train
    from trainer.yolo.train import resolve_device, train_classifier, train_detector

    p = cfg.train
    data_stage = dataset_stage(manifest.data["stages"])  # compose, or `trainer import`'s own data sets
    detect_dir = manifest.output(data_stage, DataSetOut.detect.name)
    classify_dir = manifest.output(data_stage, DataSetOut.classify.name)
    device = resolve_device(p.device)

    def body(out: Path) -> dict[str, Any]:
        plan = _time_plan(p, detect_dir, classify_dir, device)  # before any training: "too small" at once
        st = p.self_training if plan is None else p.self_training.model_copy(
            update={"rounds": len(plan.detector_rounds) - 1})
        init = _student_init(manifest, p.init, out / "init-from-teacher.pt", p.detector_arch)

        def train(data_yaml: Path, weights: Path | None, epochs: int, k: int = 0) -> Any:
            budget = {"time": plan.detector_rounds[k] / 3600} if plan else None
            return train_detector(data_yaml, out, epochs=epochs, imgsz=p.detector_imgsz, batch=p.batch,
                                  device=device, workers=p.workers, seed=p.seed, progress=progress,
                                  weights=weights, names=init.get("names"), arch=p.detector_arch, overrides=budget)

        det = train(detect_dir / "data.yaml", init.get("path"), p.detector_epochs)
        (out / "init-from-teacher.pt").unlink(missing_ok=True)  # 10 MB the later stages never read
        det, rounds = self_train(det, detect_dir.parent, out, st, train, imgsz=p.detector_imgsz,
                                 epochs=p.detector_epochs, device=device, progress=progress)
        cls = train_classifier(classify_dir, out, epochs=p.classifier_epochs, imgsz=p.classifier_imgsz,
                               batch=p.batch, device=device, workers=p.workers, seed=p.seed, progress=progress,
                               overrides={"time": plan.classifier / 3600} if plan else None)
        # Ultralytics' own work folders are large and hold nothing the later stages read; keep the plots.
        plots = out / "plots"
        plots.mkdir()
        for tag, res in (("detector", det), ("classifier", cls)):
            for png in res.plots:
                shutil.copy2(png, plots / f"{tag}-{Path(png).name}")
        shutil.rmtree(out / "ultralytics", ignore_errors=True)
        summary = {"detector": {**det.metrics, "seconds": round(sum(r["seconds"] for r in rounds), 1),
                                "epochs": sum(r["epochs"] for r in rounds),
                                "imgsz": det.imgsz, "arch": p.detector_arch},
                   "classifier": {**cls.metrics, "seconds": round(cls.seconds, 1), "epochs": cls.epochs,
                                  "imgsz": cls.imgsz},
                   "device": device, "metrics_note": "Ultralytics val on the composed val split",
                   "detector_init": {k: v for k, v in init.items() if k not in ("path", "names")},
                   "self_training": rounds, "time_budget": plan.describe() if plan else None}
        outputs = {TrainOut.detector.name: det.weights, TrainOut.classifier.name: cls.weights,
                   TrainOut.plots.name: plots}
        if len(rounds) > 1:
            outputs[TrainOut.self_training.name] = out / TrainOut.self_training.name
            outputs.update({f"detector-round-{r['round']}.pt": out / f"detector-round-{r['round']}.pt"
                            for r in rounds})
        return {"params": p.model_dump(), "inputs": {DataSetOut.detect.name: detect_dir,
                                                     DataSetOut.classify.name: classify_dir},
                "outputs": outputs, "summary": summary}

    return manifest.write_stage("train", body)


def _time_plan(p: Any, detect_dir: Path, classify_dir: Path, device: str) -> Any:
    """train.time_budget split over the trainings (trainer/budget.py), or None for plain epochs."""
    if p.time_budget is None:
        return None
    from edge.formats.yolo import list_images
    from trainer.budget import parse_budget, plan_training, step_seconds

    t0 = time.perf_counter()
    n_cls = sum(len(list_images(d)) for d in (classify_dir / "train").iterdir() if d.is_dir())
    det_step = step_seconds(p.detector_arch, p.detector_imgsz, p.batch, device)
    cls_step = step_seconds("yolo11n", p.classifier_imgsz, p.batch, device, task="classify")
    budget = parse_budget(p.time_budget, "train.time_budget") - (time.perf_counter() - t0)  # the probe's own time
    return plan_training(budget, rounds=p.self_training.rounds,
                         det_images=len(list_images(detect_dir / "images" / "train")), cls_images=n_cls,
                         det_step=det_step, cls_step=cls_step, batch=p.batch, where="train.time_budget")


def _student_init(manifest: Manifest, mode: str, path: Path, arch: str = "yolo11n") -> dict[str, Any]:
    """Where the detector starts: {"from": "scratch" | "teacher", "reason", ...; "path" and "names" of the
    starting checkpoint when it is the teacher's}. Only a teacher-mode scene (its teacher an input of the
    scene stage) has weights to start from."""
    if mode == "scratch":
        return {"from": "scratch", "reason": "train.init: scratch"}
    inputs = manifest.stage("scene").get("inputs", {}) if "scene" in manifest.data["stages"] else {}
    if "teacher" not in inputs:
        if mode == "teacher":
            raise CctvkitError("train.init: teacher needs a run made in teacher mode", manifest.path,
                               "run the scene stage with --teacher MODEL, or set train.init: auto")
        return {"from": "scratch", "reason": "no teacher"}
    from trainer.relabel.teacher import teacher_spec
    from trainer.relabel.warmstart import student_from_teacher

    meta = inputs.get("teacher_metadata", {}).get("path")
    teacher = Path(inputs["teacher"]["path"])
    try:
        spec = teacher_spec(teacher, meta)
        if spec.person_class != 0:
            raise CctvkitError(f"the teacher's person is class {spec.person_class}, the student's labels say 0",
                               teacher, "set train.init: scratch")
        real = manifest.output(SCENE.name, SceneOut.frames.name, verify=False)
        frames = sorted((real / "images").glob("*.jpg"))  # batch-norm stats
        info = student_from_teacher(teacher, spec.person_class, len(spec.class_names), spec.imgsz, path,
                                    arch_yaml=f"{arch}.yaml", frames=frames)
    except CctvkitError as e:
        if mode == "teacher":
            raise
        return {"from": "scratch", "reason": f"the teacher's weights do not transfer: {e}"}
    # The student keeps the teacher's head (all its classes; ours train class 0 = person): its hidden
    # width depends on the class count, so a one-class head would start half random.
    return {"from": "teacher", "teacher": str(teacher), **info, "path": path, "names": list(spec.class_names)}


def run_export(manifest: Manifest, cfg: PipelineConfig, progress: bool = True) -> dict[str, Any]:
    """export/stage.py owns the whole stage (exporters, calibration, verification); here it is recorded."""
    from export.stage import ExportStage
    from export.verify import VerifyParams

    verify = VerifyParams.of(cfg.export, conf=cfg.eval.conf, iou=cfg.eval.iou)
    stage = ExportStage.prepare(manifest, cfg.export, verify, progress)  # a bad --labels fails at once
    entry = _timed_stage(manifest, "export", stage.run)
    stage.finish(manifest)  # raises ExportCheckFailed after everything is recorded when an INT8 model lost too much
    return entry


def run_eval(manifest: Manifest, cfg: PipelineConfig, progress: bool = True) -> dict[str, Any]:
    from bench.evaluate import evaluate_run
    from bench.report import write_matrix_reports

    p: EvalParams = cfg.eval

    def body(out: Path) -> dict[str, Any]:
        result = evaluate_run(manifest, threads=p.threads, conf=p.conf, iou=p.iou, max_frames=p.max_frames,
                              progress=progress)
        files = write_matrix_reports(result, out)
        ext = {"labels": Path(result["data"]["path"])} if result["real_labels"] else {}
        held = manifest.output(SCENE.name, SceneOut.holdout.name)
        return {"params": p.model_dump(), "inputs": {SceneOut.holdout.name: held},
                "outputs": files, "external_inputs": ext, "summary": {"result": result}}

    return manifest.write_stage("bench", body)


def check_writable(runs_dir: Path, fix: str = "pass a writable --runs-dir") -> None:
    """Fail now, naming the folder, rather than after minutes of a stage's work."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        probe = runs_dir / ".cctvkit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CctvkitError(f"output directory is not writable ({e.strerror})", runs_dir,
                           fix) from None
