"""Train the person detector and the person/no-person classifier with Ultralytics, offline.

Ultralytics writes only under out_dir/ultralytics/: its run folders, and a staging copy of the data set
made of symlinks. The staging copy exists because Ultralytics saves label caches (labels/train.cache,
<root>/train.cache) beside the data it reads; the data set is a hashed stage output in the run manifest
and must not change.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from edge.atomic import atomic_write_bytes
from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, list_images, load_data_yaml, save_data_yaml
from export.offline import load_model, verbosity
from trainer.config import TrainParams

# Every default (epochs, imgsz, batch, workers, seed, architecture) is TrainParams' in trainer/config.py:
# what `trainer demo` and `trainer run` train with, so a direct call trains the same models.
DEFAULTS = TrainParams()

# Classifier images are whole frames squashed to a square, and a person may be small and anywhere:
# no random crop (scale=0 makes RandomResizedCrop keep the whole frame), no random erasing and no
# RandAugment (its translate moves up to ~45% of the frame out of view). Flips and colour jitter are safe.
CLASSIFY_AUGMENT: dict[str, Any] = {"scale": 0.0, "erasing": 0.0, "auto_augment": None, "fliplr": 0.5}


@dataclass
class TrainResult:
    weights: Path  # best.pt copied to out_dir/{detector,classifier}.pt
    metrics: dict[str, float]  # Ultralytics' own val of best.pt on the val split
    seconds: float
    epochs: int
    imgsz: int
    plots: list[Path] = field(default_factory=list)  # PNGs Ultralytics drew (results.png, curves, ...)
    save_dir: Path | None = None  # Ultralytics' run folder (weights/, results.csv)


def resolve_device(device: str) -> str:
    """'auto' -> CUDA device 0 when torch sees one, else 'cpu'; 'cuda' -> '0'; anything else unchanged."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return "0"
        if device == "cuda":
            raise CctvkitError(
                "device 'cuda' requested but torch sees no CUDA GPU", fix="use --device cpu or auto"
            )
        return "cpu"
    return device


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # no symlinks (some Windows setups): copy instead
        shutil.copy2(src, dst)


def _split_dir(root: Path, value: Any, yaml_path: Path, split: str) -> Path:
    if not isinstance(value, str):
        raise CctvkitError(
            f"split '{split}' must be one folder of images", yaml_path, f"set {split}: images/{split}"
        )
    d = Path(value) if Path(value).is_absolute() else root / value
    if not d.is_dir() or not list_images(d):
        raise CctvkitError(
            f"split '{split}' has no images at {d}", yaml_path, "point it at a folder of images"
        )
    return d


def stage_detect_dataset(data_yaml: Path, staging: Path, names: list[str] | None = None) -> tuple[Path, list[str]]:
    """Symlink the data set's images and labels into staging/ and write staging/data.yaml.

    Everything is checked before the first link, so a bad data set leaves no staging folder. `names`
    replaces the data set's class names (a student started from a teacher keeps the teacher's head:
    its classes, of which ours use class 0 = person).
    """
    doc = load_data_yaml(data_yaml)
    names = doc["names"] if names is None else names
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    root = Path(doc["path"]) if doc.get("path") else data_yaml.parent
    root = root if root.is_absolute() else data_yaml.parent / root
    sources: dict[str, Path] = {}
    for split in ("train", "val", "test"):
        if doc.get(split) in (None, ""):
            if split == "test":
                continue
            raise CctvkitError(f"data.yaml has no '{split}' split", data_yaml, f"add {split}: images/{split}")
        sources[split] = _split_dir(root, doc[split], data_yaml, split)
    for split, src in sources.items():
        for img in list_images(src):
            rel = img.relative_to(src)
            _link(img, staging / "images" / split / rel)
            label = label_path_for(img)
            if label.is_file():
                _link(label, (staging / "labels" / split / rel).with_suffix(".txt"))
    splits = {split: f"images/{split}" for split in sources}
    return save_data_yaml(staging / "data.yaml", names, splits), names


def stage_classify_dataset(cls_root: Path, staging: Path) -> list[str]:
    """Symlink cls_root/{train,val}/<class>/*.jpg into staging/; returns the class names (sorted, as
    Ultralytics' ImageFolder orders them). Checked before the first link."""
    if not cls_root.is_dir():
        raise CctvkitError(
            "classifier data folder not found", cls_root, "pass the compose stage's classify/ folder"
        )
    classes: dict[str, list[str]] = {}
    for split in ("train", "val"):
        d = cls_root / split
        found = sorted(p.name for p in d.iterdir() if p.is_dir() and list_images(p)) if d.is_dir() else []
        if len(found) < 2:
            raise CctvkitError(
                f"'{split}' needs at least two class folders with images, found {found}",
                d,
                "lay out train/{person,no_person}/*.jpg and val/{person,no_person}/*.jpg",
            )
        classes[split] = found
    if classes["train"] != classes["val"]:
        raise CctvkitError(
            f"train classes {classes['train']} differ from val classes {classes['val']}",
            cls_root,
            "give both splits the same class folders",
        )
    for split, found in classes.items():
        for cls in found:
            for img in list_images(cls_root / split / cls):
                _link(img, staging / split / cls / img.relative_to(cls_root / split / cls))
    return classes["train"]


def _thread_callback(device: str) -> Any:
    """Ultralytics sets torch to cpu_count-1 threads on CPU (1 on a 2-core box); use them all, the
    data loader workers mostly wait on cached RAM images."""

    def on_train_start(trainer: Any) -> None:
        import torch

        if device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)

    return on_train_start


def _copy_atomic(src: Path, dst: Path) -> Path:
    return atomic_write_bytes(dst, src.read_bytes())


class TrainOptions(TypedDict, total=False):
    """The keyword arguments both trainers take; left out, each is DEFAULTS' value for that task."""

    epochs: int
    imgsz: int
    batch: int
    device: str
    workers: int
    seed: int
    weights: Path | None  # a local .pt to start from; None: random init from the architecture's yaml
    progress: bool
    overrides: Mapping[str, Any] | None  # any other Ultralytics train argument, e.g. {"mosaic": 0.5}


def _options(task: str, given: TrainOptions) -> dict[str, Any]:
    unknown = sorted(set(given) - set(TrainOptions.__annotations__))
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}")
    detect = task == "detect"
    return {
        "epochs": DEFAULTS.detector_epochs if detect else DEFAULTS.classifier_epochs,
        "imgsz": DEFAULTS.detector_imgsz if detect else DEFAULTS.classifier_imgsz,
        # A library call trains where it is told, on the CPU unless told otherwise; the pipeline resolves
        # its own device setting ("auto": CUDA when there is one) before it calls.
        "device": "cpu",
        "batch": DEFAULTS.batch, "workers": DEFAULTS.workers, "seed": DEFAULTS.seed, "weights": None,
        "progress": True, "overrides": None, **given,
    }


def _run(task: str, data: Path, out_dir: Path, opts: dict[str, Any], args: dict[str, Any],
         arch: str | None = None) -> tuple[Any, Any, float]:
    device = resolve_device(opts["device"])
    weights = opts["weights"]
    model = load_model(task, weights, arch)
    model.add_callback("on_train_start", _thread_callback(device))
    train_args = {
        "data": str(data),
        "epochs": int(opts["epochs"]),
        "imgsz": int(opts["imgsz"]),
        "batch": int(opts["batch"]),
        "device": device,
        "workers": int(opts["workers"]),
        "seed": int(opts["seed"]),
        "project": str(out_dir / "ultralytics"),  # absolute, or Ultralytics prefixes its runs_dir
        "name": task,
        "exist_ok": True,
        "amp": False,  # the AMP check downloads yolo26n.pt
        "pretrained": weights is not None,
        "cache": "ram",
        "plots": True,
        "verbose": opts["progress"],
        **args,
        **dict(opts["overrides"] or {}),
    }
    t0 = time.perf_counter()
    with verbosity(opts["progress"]):
        metrics = model.train(**train_args)
    return model, metrics, time.perf_counter() - t0


def _epochs_trained(model: Any, asked: int) -> int:
    """The epochs Ultralytics ran: `asked`, unless a time budget (its `time` argument) re-planned them."""
    epoch = getattr(getattr(model, "trainer", None), "epoch", None)
    return int(epoch) + 1 if isinstance(epoch, int) else int(asked)


def _result(model: Any, out_dir: Path, keep_as: str, metrics: dict[str, float], seconds: float,
            opts: dict[str, Any]) -> TrainResult:
    """best.pt (last.pt when there is none) copied to out_dir/keep_as, with what Ultralytics drew."""
    save_dir = Path(model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.is_file():
        best = save_dir / "weights" / "last.pt"
    return TrainResult(
        weights=_copy_atomic(best, out_dir / keep_as),
        metrics=metrics,
        seconds=seconds,
        epochs=_epochs_trained(model, opts["epochs"]),
        imgsz=int(opts["imgsz"]),
        plots=sorted(save_dir.glob("*.png")),
        save_dir=save_dir,
    )


def train_detector(data_yaml: Path, out_dir: Path, *, names: list[str] | None = None,
                   arch: str = DEFAULTS.detector_arch, **options: Unpack[TrainOptions]) -> TrainResult:
    """Train a YOLO detector (`arch`, YOLO11n by default) on a YOLO data.yaml; best.pt ends up as
    out_dir/detector.pt. `names` replaces the data set's class names (see stage_detect_dataset)."""
    opts = _options("detect", options)
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise CctvkitError("data.yaml not found", data_yaml, "pass the compose stage's detect/data.yaml")
    out_dir = Path(out_dir).resolve()
    staging = out_dir / "ultralytics" / "data-detect"
    shutil.rmtree(staging, ignore_errors=True)
    staged_yaml, _ = stage_detect_dataset(data_yaml, staging, names)
    model, metrics, seconds = _run("detect", staged_yaml, out_dir, opts, {}, arch)
    rd = metrics.results_dict
    scores = {
        "map50": float(rd["metrics/mAP50(B)"]),
        "map50_95": float(rd["metrics/mAP50-95(B)"]),
        "precision": float(rd["metrics/precision(B)"]),
        "recall": float(rd["metrics/recall(B)"]),
    }
    return _result(model, out_dir, "detector.pt", scores, seconds, opts)


def train_classifier(cls_root: Path, out_dir: Path, **options: Unpack[TrainOptions]) -> TrainResult:
    """Train a YOLO11n-cls person/no-person classifier on cls_root/{train,val}/<class>/*.jpg;
    best.pt ends up as out_dir/classifier.pt. Metrics: top-1 accuracy on val."""
    opts = _options("classify", options)
    cls_root = Path(cls_root)
    out_dir = Path(out_dir).resolve()
    staging = out_dir / "ultralytics" / "data-classify"
    shutil.rmtree(staging, ignore_errors=True)
    stage_classify_dataset(cls_root, staging)
    model, metrics, seconds = _run("classify", staging, out_dir, opts, CLASSIFY_AUGMENT)
    return _result(model, out_dir, "classifier.pt", {"top1": float(metrics.top1)}, seconds, opts)
