"""Parameters of the stages the trainer CLI runs, as one pydantic tree so a YAML file can set any of them.

Stage-specific models live with their stage (SceneParams in trainer/scene, ComposeParams in trainer/compose);
export's live with export (ExportParams in export/params.py); this module adds training and evaluation
and the demo preset that ties them together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge.errors import CctvkitError
from edge.strict import Strict
from export.params import ExportParams
from trainer.compose.params import ComposeParams
from trainer.relabel.selftrain import SelfTrainParams
from trainer.scene.params import SceneParams


class TrainParams(Strict):
    # Also the defaults of a direct trainer/yolo/train.py call. Measured on 2 CPU cores (240 train images,
    # batch 16): detector at 320 ~15 s/epoch without mosaic, ~18 s with (more when the cores are shared);
    # classifier at 128 ~2 s/epoch, at 160 ~2.6 s.
    detector_epochs: int = Field(12, ge=1)
    detector_imgsz: int = Field(320, ge=32, multiple_of=32)
    classifier_epochs: int = Field(20, ge=1)
    classifier_imgsz: int = Field(160, ge=32, multiple_of=32)
    batch: int = Field(16, ge=1)
    device: str = "auto"  # "auto" picks CUDA when there is one
    workers: int = Field(2, ge=0)
    seed: int = 0
    # Where the detector's weights start. "teacher": from the teacher's own weights (teacher mode with a
    # .tflite YOLO11n teacher, trainer/relabel/warmstart.py), an error when they do not transfer;
    # "auto": the teacher's when they transfer, else random (the reason is recorded); "scratch": random
    # init from yolo11n.yaml, as without a teacher.
    init: Literal["auto", "scratch", "teacher"] = "auto"
    # The detector's architecture (Ultralytics yaml, random init unless init takes the teacher's weights,
    # which then must be the same architecture). yolo26n (DFL-free, trained with a one-to-one and a
    # one-to-many head) exports its one-to-many head, decoded with NMS like the others (export/offline.py
    # RAW_HEAD_NMS says why).
    detector_arch: Literal["yolo11n", "yolov8n", "yolo26n"] = "yolo11n"
    # After the first detector: relabel the real frames with it and train again (trainer/relabel/selftrain.py).
    self_training: SelfTrainParams = SelfTrainParams()
    # Wall-clock seconds for the whole train stage ("15m", "1h30m"); epochs then follow the machine's speed
    # (trainer/budget.py) and self-training rounds that would not get one epoch are dropped. None: epochs.
    time_budget: str | None = None

    @field_validator("time_budget")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        from trainer.budget import parse_budget

        if v is not None:
            try:
                parse_budget(v, "time_budget")
            except CctvkitError as e:
                raise ValueError(e.args[0]) from None
        return v


class EvalParams(Strict):
    threads: int = Field(2, ge=1)
    conf: float = Field(0.25, gt=0, lt=1)
    iou: float = Field(0.45, gt=0, lt=1)
    max_frames: int = Field(120, ge=1)


class PersonsParams(Strict):
    """The generated persons of a pipeline run (`trainer demo --persons`, the experiment's generated-N arms):
    the generator trained on the scene's cutouts, then sampled and gated (trainer/diffusion/stage.py). Used
    only when compose.persons asks for generated persons."""

    preset: Literal["auto", "tiny", "base", "large"] = "auto"  # auto: tiny on a CPU, base on a GPU
    steps: int | None = Field(None, ge=1, description="generator training steps (default: the preset's)")
    extra_data: str | None = None  # images/ + masks/ (e.g. ../shared/data/human-seg) added to the scene's cutouts
    n: int = Field(300, ge=1, description="cutouts sampled; the gate keeps those a detector finds")
    gate: Literal["auto", "off"] = "auto"  # auto: the run's detector, else the teacher, else HOG; off: keep all
    gate_conf: float | None = Field(None, gt=0, description="default: the gate detector's own (0.3, HOG 0.5)")
    sample_steps: int | None = Field(None, ge=1, description="DDIM steps (default: the preset's)")
    seed: int = 0


class PipelineConfig(Strict):
    scene: SceneParams = SceneParams()
    persons: PersonsParams = PersonsParams()
    compose: ComposeParams = ComposeParams()
    train: TrainParams = TrainParams()
    export: ExportParams = ExportParams()
    eval: EvalParams = EvalParams()


def quick_config() -> PipelineConfig:
    """A few-minute smoke run of the whole path (CI, first look); the numbers it gives are not meaningful."""
    cfg = PipelineConfig()
    cfg.train = TrainParams(detector_epochs=1, detector_imgsz=160, classifier_epochs=1, classifier_imgsz=64, batch=8)
    cfg.export = ExportParams(calibration_images=32, verify_frames=40, verify_threads=[1],
                              verify_timing_frames=10)
    cfg.eval = EvalParams(max_frames=20)
    cfg.persons = PersonsParams(steps=40, n=24, sample_steps=5)
    return cfg
