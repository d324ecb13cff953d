"""The experiment's YAML: what to compare, on which data, with which (identical) pipeline parameters.

    name: thermal                      # the experiment folder is <runs_dir>/<name>/
    runs_dir: runs
    data: ../shared/data/thermal-harbour          # YOLO images/ + labels/ (class 0 = person)
    negatives: ../shared/data/thermal-harbour/backgrounds   # optional person-free frames
    split: {block_size: 100, guard: 5, val_fraction: 0.2, test_fraction: 0.2}
    # test_data: ../shared/data/caviar-lobby/walk3   # optional: test on ANOTHER clip of the same camera
    # test_negatives: DIR                            # optional person-free frames for that test set
    arms: [real, label-free, synthetic-only, hybrid-10, hybrid-50]
    # teacher: ../shared/data/models/coco-yolo11n-640-int8w.tflite   # teacher mode: adds the arm "teacher"
    # teacher_metadata: ../shared/data/models/coco-names-metadata.yaml   # class names of a bare .tflite
    budget: auto                       # cpu | gpu | auto (cpu when torch sees no CUDA GPU)
    pipeline:                          # a trainer.config.PipelineConfig, the same for every arm
      train: {detector_epochs: 5}

Every key is validated (unknown keys are an error naming the key). `pipeline:` keys you set win over the
budget preset; the preset only fills what you leave out. Paths are relative to the current directory.
The experiment owns the export keys that make the evaluation the same for every arm (labels, negatives,
verify, formats, verify_threads, verify_frames): setting them is an error.

`teacher: MODEL` (a detector the edge runtime reads, with a 'person' class) is teacher mode: the arm
`teacher` is label-free's recipe with the teacher labelling the real frames (scene.teacher says how), in
its own scene run (<experiment>/scene-teacher/), and the teacher itself is scored on the same test set
beside the arms: the student's target. Listing the arm without the key, or the key without the arm, is an
error.

`test_data: DIR` (YOLO images/ + labels/ of another clip of the same camera, e.g. data: .../walk1 and
test_data: .../walk3) makes the test set every labelled frame of that clip: `data` is then split into
train/val only (time blocks and guard bands as above, test_fraction 0, so setting split.test_fraction is an
error) and `test_negatives: DIR` (optional) are the person-free frames scored beside it. `negatives:` then
go to train/val only. Without test_data the test set is the test_fraction of `data`'s time blocks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from edge.config_errors import load_yaml_config
from edge.errors import CctvkitError
from edge.strict import Strict
from trainer.config import PipelineConfig
from trainer.relabel.teacher import TeacherFile

DEFAULT_ARMS = ["real", "label-free", "synthetic-only", "hybrid-10", "hybrid-50"]
FIXED_ARMS = ("real", "label-free", "synthetic-only", "teacher")
HYBRID = re.compile(r"^hybrid-(\d{1,3})$")
GENERATED = re.compile(r"^generated-(\d{1,3})$")  # label-free with N % of the composed persons generated

# Reduced defaults for a CPU-only machine (2-4 cores): five arms in well under an hour on thermal-harbour.
# The detector keeps the project's 320 px input (thermal people are ~26 px tall; smaller inputs lose them);
# fewer epochs and a smaller classifier are what make it affordable.
CPU_PRESET: dict[str, Any] = {
    "scene": {"plate_frames": 60, "calib_frames": 80, "train_frames": 120, "max_cutouts": 200,
              "holdout_frames": 30},  # the scene's own holdout is not scored: the real test split is
    # compose.n_images is not preset: equal_training_size matches it to the real train split.
    "train": {"detector_epochs": 5, "detector_imgsz": 320, "classifier_epochs": 3, "classifier_imgsz": 96,
              "batch": 16},
    "export": {"calibration_images": 64, "verify_timing_frames": 5},
}
GPU_PRESET: dict[str, Any] = {}  # the project defaults (trainer/config.py)
PRESETS = {"cpu": CPU_PRESET, "gpu": GPU_PRESET}
# Set by the experiment for every arm: the one evaluation path on the one real test split.
OWNED_EXPORT_KEYS = ("labels", "negatives", "verify", "formats", "verify_threads", "verify_frames")


def hybrid_percent(arm: str) -> int | None:
    """N of 'hybrid-N', else None."""
    m = HYBRID.match(arm)
    return int(m.group(1)) if m else None


def generated_percent(arm: str) -> int | None:
    """N of 'generated-N', else None."""
    m = GENERATED.match(arm)
    return int(m.group(1)) if m else None


def _check_arm(arm: str) -> str:
    n = hybrid_percent(arm) if hybrid_percent(arm) is not None else generated_percent(arm)
    if arm in FIXED_ARMS or (n is not None and 1 <= n <= 100):
        return arm
    raise ValueError(f"unknown arm; use one of {', '.join(FIXED_ARMS)}, hybrid-N or generated-N with N in 1..100")


class SplitParams(Strict):
    """The time-block split `trainer import` uses (trainer/importer.py), applied once for all arms."""

    block_size: int = Field(100, ge=1, description="consecutive frames per time block")
    guard: int | None = Field(None, ge=0, description="frames dropped after a split boundary "
                              "(default block_size // 20, as trainer import)")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1, description="0 only with test_data (set by the experiment)")

    @model_validator(mode="after")
    def _check(self) -> SplitParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave frames to train on (< 1)")
        return self

    @property
    def resolved_guard(self) -> int:
        return max(0, self.block_size // 20) if self.guard is None else self.guard


class ExperimentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    runs_dir: str = "runs"
    data: str
    negatives: str | None = None
    test_data: str | None = None  # another clip of the camera: the whole test set; data is train/val only
    test_negatives: str | None = None  # person-free frames for that test set (needs test_data)
    split: SplitParams = Field(default_factory=lambda: SplitParams.model_validate({}))
    arms: list[Annotated[str, AfterValidator(_check_arm)]] = Field(default_factory=lambda: list(DEFAULT_ARMS),
                                                                   min_length=1)
    budget: Literal["cpu", "gpu", "auto"] = "auto"
    teacher: str | None = None  # teacher mode: the arm "teacher" and the teacher's own row
    teacher_metadata: str | None = None
    pipeline: PipelineConfig = PipelineConfig()

    @model_validator(mode="after")
    def _unique(self) -> ExperimentConfig:
        dup = sorted({a for a in self.arms if self.arms.count(a) > 1})
        if dup:
            raise ValueError(f"arms listed twice: {dup}")
        if ("teacher" in self.arms) != bool(self.teacher):
            raise ValueError("the arm 'teacher' and the key 'teacher: MODEL' go together: set both or neither")
        if self.teacher_metadata and not self.teacher:
            raise ValueError("teacher_metadata needs teacher: MODEL")
        return self

    @property
    def folder(self) -> Path:
        return Path(self.runs_dir) / self.name


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_budget(cfg: ExperimentConfig) -> str:
    if cfg.budget != "auto":
        return cfg.budget
    from trainer.yolo.train import resolve_device  # imports torch: only when a budget must be guessed

    return "cpu" if resolve_device(cfg.pipeline.train.device) == "cpu" else "gpu"


def arm_pipeline(cfg: ExperimentConfig, budget: str, source: str | Path = "config") -> PipelineConfig:
    """The PipelineConfig every arm runs with: budget preset, then the keys the user set on top."""
    user = cfg.pipeline.model_dump(exclude_unset=True)
    for key in OWNED_EXPORT_KEYS:
        if key in user.get("export", {}):
            raise CctvkitError(f"key 'pipeline.export.{key}' is set by the experiment for every arm", source,
                               "remove it (every arm is verified on the experiment's test split)")
    return PipelineConfig.model_validate(_merge(PRESETS[budget], user))


def equal_training_size(cfg: ExperimentConfig, pipe: PipelineConfig, n_train: int) -> PipelineConfig:
    """Unless the user set compose.n_images, compose as many images as the real train split holds: with
    identical epochs the arms then take about as many optimizer steps, so a label-free arm is not judged
    undertrained (the first thermal run, 320 composed vs 627 real train images at 4 epochs, learned
    nothing at all on its own val split)."""
    if "n_images" in cfg.pipeline.model_dump(exclude_unset=True).get("compose", {}):
        return pipe
    out = pipe.model_copy(deep=True)
    n = max(2, round(n_train / (1 - out.compose.val_fraction)))
    out.compose = out.compose.model_copy(update={"n_images": n})
    return out


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """The validated config; a bad key or value is one CctvkitError that names it."""
    cfg: ExperimentConfig = load_yaml_config(path, ExperimentConfig)
    check_test_keys(cfg, path)
    # Paths are relative to the current directory, like `trainer import --data --runs-dir`; made absolute
    # now so every stage and report names the same files.
    cfg.data = str(Path(cfg.data).resolve())
    cfg.negatives = str(Path(cfg.negatives).resolve()) if cfg.negatives else None
    cfg.runs_dir = str(Path(cfg.runs_dir).resolve())
    if cfg.teacher:
        cfg.teacher = str(Path(cfg.teacher).resolve())
        cfg.teacher_metadata = str(Path(cfg.teacher_metadata).resolve()) if cfg.teacher_metadata else None
        teacher_file(cfg).check()  # a teacher that cannot teach fails before any arm runs
    if cfg.test_data:
        cfg.test_data = str(Path(cfg.test_data).resolve())
        cfg.test_negatives = str(Path(cfg.test_negatives).resolve()) if cfg.test_negatives else None
        cfg.split = cfg.split.model_copy(update={"test_fraction": 0.0})  # data: train/val only
    return cfg


def check_test_keys(cfg: ExperimentConfig, source: str | Path) -> None:
    """test_data and split.test_fraction are two ways to say where the test set comes from: one only."""
    if cfg.test_data and "test_fraction" in cfg.split.model_fields_set:
        raise CctvkitError("key 'split.test_fraction' cannot be set together with 'test_data' (the test set "
                           "is every frame of test_data)", source,
                           "remove split.test_fraction, or remove test_data to hold out part of data")
    if not cfg.test_data and cfg.test_negatives:
        raise CctvkitError("key 'test_negatives' needs 'test_data'", source,
                           "add test_data: DIR (the test clip), or remove test_negatives")
    if not cfg.test_data and cfg.split.test_fraction == 0:
        raise CctvkitError("key 'split.test_fraction' = 0 leaves no test frames", source,
                           "use 0 < test_fraction < 1, or add test_data: DIR (another clip to test on)")


def teacher_file(cfg: ExperimentConfig) -> TeacherFile | None:
    if not cfg.teacher:
        return None
    return TeacherFile(Path(cfg.teacher), Path(cfg.teacher_metadata) if cfg.teacher_metadata else None)
