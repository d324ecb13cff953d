"""run_experiment: split once, prepare / train / export / score every arm the same way, write the report.

Every arm is scored by the project's one evaluation path, `pipeline.run_export` with export.labels = the
experiment's test folder: export/verify.json's row for the FP32 ONNX detector (the edge runtime on the
real test frames) is the arm's result. An arm that fails is reported with its reason and the next one
runs; the report is rewritten after every arm, so a long experiment shows its results as they come.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from edge.atomic import atomic_write_text
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from edge.manifest import Manifest
from edge.stages import DataSetOut, dataset_stage
from trainer import pipeline
from trainer.config import PipelineConfig
from trainer.relabel.teacher import TeacherFile

from .arms import ArmData, SceneBase, prepare_arm
from .config import (
    ExperimentConfig,
    arm_pipeline,
    equal_training_size,
    generated_percent,
    resolve_budget,
    teacher_file,
)
from .pseudo import pseudo_label_quality
from .report import write_report
from .split import (
    ExperimentSplit,
    assert_no_leakage,
    held_out_hashes,
    make_split,
    training_files,
    write_split_json,
    write_test_set,
)

console = Console(stderr=True)
DETECTOR = "detector-onnx-fp32"  # the arm's result: FP32 ONNX through the edge runtime
METRIC_KEYS = ("map50", "map50_95", "box_precision", "box_recall", "box_f1", "presence_f1", "count_mae",
               "negative_frames", "false_alarm_rate", "false_alarms_per_hour")


def evaluation_config(pipe: PipelineConfig, test_info: dict[str, Any]) -> PipelineConfig:
    """The arms' config with the evaluation fixed: ONNX only, verified on every test frame, 1 thread."""
    cfg = pipe.model_copy(deep=True)
    cfg.export = type(cfg.export).model_validate({
        **cfg.export.model_dump(), "formats": ["onnx"], "verify": True, "verify_threads": [1],
        "labels": test_info["path"], "negatives": test_info["negatives_path"],
        "verify_frames": max(1, test_info["frames"])})
    return cfg


def read_metrics(verify_json: Path) -> dict[str, Any]:
    """The detector row of export/verify.json; keys the verifier does not write (yet) are None."""
    doc = json.loads(verify_json.read_text())
    row = next((r for r in doc["rows"] if r.get("model") == DETECTOR), None)
    if row is None or "error" in row:
        why = row["error"] if row else "no such row"
        raise CctvkitError(f"{DETECTOR} was not scored ({why})", verify_json, "see verify.md of this arm")
    out: dict[str, Any] = {k: row.get(k) for k in METRIC_KEYS}
    int8 = next((r for r in doc["rows"] if r.get("model") == "detector-onnx-int8" and "error" not in r), None)
    out["int8_map50_95"] = int8.get("map50_95") if int8 else None
    out["scored_on"] = {k: doc.get("data", {}).get(k) for k in ("path", "frames", "boxes")}
    return out


def _arm_seconds(m: Any) -> float:
    """What the arm would cost on its own: its stages (shared ones included) + the verification."""
    stages = m.data["stages"]
    verify = stages.get("export", {}).get("summary", {}).get("verify", {}).get("seconds", 0.0)
    return round(sum(s.get("seconds", 0.0) for s in stages.values()) + verify, 1)


def run_arm(arm: str, exp: Path, split: ExperimentSplit, bases: dict[str, SceneBase], cfg: PipelineConfig,
            hashes: dict[str, str], progress: bool) -> dict[str, Any]:
    from export.verify import ExportCheckFailed

    t0 = time.perf_counter()
    arm_dir = exp / "arms" / arm
    result: dict[str, Any] = {"arm": arm, "run_dir": str(arm_dir)}
    try:
        data: ArmData = prepare_arm(arm, arm_dir, split, bases, cfg, progress)
        m = data.manifest
        det = m.output(dataset_stage(m.data["stages"]), DataSetOut.detect.name, verify=False) / "images"
        result.update(description=data.description, real_label_percent=data.real_label_percent,
                      train_images=len(list_images(det / "train")), val_images=len(list_images(det / "val")),
                      **data.extra)
        files = training_files(m)
        if arm != "real":  # the scene's only input: the frame folder
            files += list_images(exp / "frames")
        result["leakage_check"] = {"files_checked": assert_no_leakage(arm, hashes, files, split, data.sources),
                                   "sources_checked": len(data.sources), "passed": True}
        pipeline.run_train(m, cfg, progress)
        try:
            pipeline.run_export(m, cfg, progress)
        except ExportCheckFailed as e:  # INT8 lost too much: reported, the FP32 result still stands
            result["int8_check"] = str(e)
        result["metrics"] = read_metrics(m.run_dir / "export" / "verify.json")
        train = m.stage("train")["summary"]
        result["train"] = {k: train["detector"].get(k) for k in ("epochs", "imgsz")}
        result["train"]["init"] = train.get("detector_init", {})
        if result["train"]["init"].get("from") == "teacher":
            result["description"] += "; the detector starts from the teacher's own weights"
        result["stage_seconds"] = {k: v.get("seconds") for k, v in m.data["stages"].items()}
        result["seconds"] = _arm_seconds(m)
        m.data["complete"] = True
        m.data["experiment"] = {"arm": arm, "folder": str(exp), "description": data.description}
        m.save()
        result["status"] = "ok"
    except Exception as e:  # one arm's failure must not cost the others their results
        result.update(status="failed", error=str(e) if isinstance(e, CctvkitError) else f"{type(e).__name__}: {e}")
        log = exp / "arms" / f"{arm}-error.txt"
        atomic_write_text(log, traceback.format_exc())
        result["traceback"] = str(log)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def score_model_file(spec: Any, path: Path, cfg: PipelineConfig, label: str, progress: bool) -> dict[str, Any]:
    """A detector file on the arms' test set (cfg.export.labels + negatives), by the same evaluation core and
    threshold as every arm's verify row (edge runtime, 1 thread)."""
    from edge.detector import Detector
    from edge.eval import load_yolo_folder, with_negatives
    from edge.eval.accuracy import model_accuracy

    data = with_negatives(load_yolo_folder(cfg.export.labels), cfg.export.negatives)
    det = Detector(spec, path, threads=1, conf=cfg.eval.conf, iou=cfg.eval.iou, classes=[spec.person_class])
    scores = model_accuracy(det, data, cfg.eval.conf, label, progress)
    return {k: scores.get(k) for k in METRIC_KEYS}


def score_teacher(teacher: TeacherFile, test_info: dict[str, Any], cfg: PipelineConfig,
                  progress: bool) -> dict[str, Any]:
    """The teacher on the arms' test set: the figure a student distilled from it is compared with."""
    spec = teacher.check()
    t0 = time.perf_counter()
    metrics = score_model_file(spec, teacher.path, cfg, "teacher", progress)
    out = {"path": str(teacher.path), "imgsz": list(spec.imgsz), "format": spec.format, "precision": spec.precision,
           "metrics": metrics, "seconds": round(time.perf_counter() - t0, 1)}
    console.print(f"teacher {teacher.path.name} @{spec.imgsz[0]}: mAP50 {metrics['map50']:.3f}  "
                  f"mAP50-95 {metrics['map50_95']:.3f}")
    return out


def score_rounds(m: Any, rounds: list[dict[str, Any]], split: ExperimentSplit, cfg: PipelineConfig,
                 progress: bool) -> list[dict[str, Any]]:
    """Each self-training round's labels (against the real labels of the training frames) and detector (on
    the test set, exported to FP32 ONNX and scored like the arm's verify row)."""
    from export.onnx_export import export_onnx
    from export.pt_trust import recorded_pt

    imgsz = int(m.stage("train")["params"]["detector_imgsz"])
    out = []
    with tempfile.TemporaryDirectory(dir=m.run_dir) as tmp:
        for r in rounds:
            k = r["round"]
            labels_dir = None if k == 0 else m.output("train", "self-training") / f"round-{k}" / "labels"
            what = ("the scene's pseudo-labels" if k == 0 else f"round {k}'s relabelled frames") + \
                " of training frames against their real labels, IoU 0.5"
            onnx = Path(tmp) / f"round-{k}.onnx"
            pt, sha256 = recorded_pt(m, f"detector-round-{k}.pt")
            spec = export_onnx(pt, onnx, task="detect", imgsz=imgsz, sha256=sha256)
            out.append({"round": k, "epochs": r["epochs"],
                        "labels": pseudo_label_quality(m.run_dir / "scene", split, labels_dir, what),
                        "detector": score_model_file(spec, onnx, cfg, f"round {k}", progress)})
    return out


def _check_real_negatives(cfg: ExperimentConfig, split: ExperimentSplit, source: str | Path) -> None:
    """The real arm's classifier needs person-free frames in train and val; the label-free arms make their
    own from the plates. Found out now, not after the real arm's import (CAVIAR: a person in every frame)."""
    if "real" not in cfg.arms:
        return
    for name in ("train", "val"):
        empty = sum(f.boxes == 0 for f in split.of(name)) + len(split.negatives_of(name))
        if empty == 0:
            raise CctvkitError(f"no person-free frame in the {name} split and no negatives: the real arm's "
                               "classifier cannot learn 'no person'", source,
                               "add negatives: DIR (empty-scene frames of this camera), or drop the real arm")


def _replace(exp: Path, force: bool) -> None:
    if not exp.exists():
        return
    if not force:
        raise CctvkitError("experiment folder already exists", exp, "pass --force to replace it, or change name:")
    old = exp.with_name(f".{exp.name}.old-{os.getpid()}")
    os.replace(exp, old)  # out of the way at once; deleting a big tree takes a while
    shutil.rmtree(old, ignore_errors=True)


def _say(result: dict[str, Any]) -> None:
    if result["status"] == "ok":
        mt = result["metrics"]
        console.print(f"arm {result['arm']}: mAP50 {mt['map50']:.3f}  mAP50-95 {mt['map50_95']:.3f}  "
                      f"({result['train_images']} train images, {result['seconds']:.0f} s)")
    else:
        console.print(f"[red]arm {result['arm']} failed:[/] {result['error']}")


def run_experiment(cfg: ExperimentConfig, *, force: bool = False, progress: bool = True,
                   source: str | Path = "config") -> dict[str, Any]:
    """Build <runs_dir>/<name>/: split.json, test/, arms/<arm>/ (run directories), experiment.{json,md,png}."""
    t0 = time.perf_counter()
    budget = resolve_budget(cfg)
    pipe = arm_pipeline(cfg, budget, source)
    exp = cfg.folder
    pipeline.check_writable(exp.parent)
    split = make_split(Path(cfg.data), Path(cfg.negatives) if cfg.negatives else None, cfg.split,
                       Path(cfg.test_data) if cfg.test_data else None,
                       Path(cfg.test_negatives) if cfg.test_negatives else None)
    _check_real_negatives(cfg, split, source)
    _replace(exp, force)  # after the split: a bad data folder leaves an old experiment alone
    exp.mkdir(parents=True)
    test_info = write_test_set(split, exp / "test")
    write_split_json(split, exp / "split.json", test_info)
    pipe = equal_training_size(cfg, pipe, len(split.of("train")))
    eval_cfg = evaluation_config(pipe, test_info)
    hashes = held_out_hashes(exp / "test", split)
    clip = f" (all of {cfg.test_data}, another clip)" if cfg.test_data else ""
    console.print(f"experiment {cfg.name}: {len(cfg.arms)} arms, budget {budget}; test set {test_info['frames']} "
                  f"frames / {test_info['boxes']} boxes in {exp / 'test'}{clip}")
    doc: dict[str, Any] = {
        "schema": "cctvkit.experiment", "version": 1, "name": cfg.name, "folder": str(exp), "complete": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget": budget, "data": cfg.data,
        "negatives": cfg.negatives, "split": str(exp / "split.json"), "test_set": test_info,
        "evaluation": f"export/verify.json row {DETECTOR}: the edge runtime on every test frame, conf "
                      f"{eval_cfg.eval.conf}, iou {eval_cfg.eval.iou}",
        "shared": "the scene stage, label-free's compose (and for generated-N the generator and persons) run "
                  "once in scene-base/ and are hard-linked "
                  "into label-free, synthetic-only (scene only) and every hybrid-N",
        "pipeline": eval_cfg.model_dump(mode="json"), "arms": [],
    }
    if cfg.test_data:
        doc.update(test_data=cfg.test_data, test_negatives=cfg.test_negatives)
    teacher = teacher_file(cfg)
    generated = any(generated_percent(a) is not None for a in cfg.arms)
    bases = {"label-free": SceneBase(exp, split, eval_cfg, progress, generated=generated, gate_teacher=teacher)}
    if teacher is not None:
        bases["teacher"] = SceneBase(exp, split, eval_cfg, progress, teacher, name="scene-teacher")
        console.rule("[bold]the teacher itself")
        doc["teacher_model"] = score_teacher(teacher, test_info, eval_cfg, progress)
        write_report(doc, exp)
    for arm in cfg.arms:
        console.rule(f"[bold]arm {arm}")
        result = run_arm(arm, exp, split, bases, eval_cfg, hashes, progress)
        _say(result)
        doc["arms"].append(result)
        write_report(doc, exp)
    doc["pseudo_labels"] = pseudo_label_quality(exp / "scene-base" / "scene", split)
    for result in doc["arms"]:  # after every arm: scoring a round's labels reads the training frames' labels
        m = Manifest.load(result["run_dir"]) if result["status"] == "ok" else None
        rounds = m.stage("train")["summary"].get("self_training") or [] if m else []
        if m is not None and len(rounds) > 1:
            console.rule(f"[bold]self-training rounds of arm {result['arm']}")
            result["self_training"] = score_rounds(m, rounds, split, eval_cfg, progress)
    if teacher is not None:
        doc["pseudo_labels_teacher"] = pseudo_label_quality(exp / "scene-teacher" / "scene", split)
    doc["complete"] = True
    doc["seconds_total"] = round(time.perf_counter() - t0, 1)
    files = write_report(doc, exp)
    console.print(f"report: {files['experiment.md']}")
    return doc
