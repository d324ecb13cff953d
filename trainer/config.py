"""Parameters of the stages the trainer CLI runs, as one pydantic tree so a YAML file can set any of them.

Stage-specific models live with their stage (SceneParams in trainer/scene, ComposeParams in trainer/compose);
this module adds training, export and evaluation and the demo preset that ties them together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer.compose.params import ComposeParams
from trainer.scene.params import SceneParams


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainParams(Strict):
    detector_epochs: int = Field(12, ge=1)
    detector_imgsz: int = Field(320, ge=32, multiple_of=32)
    classifier_epochs: int = Field(20, ge=1)
    classifier_imgsz: int = Field(160, ge=32, multiple_of=32)
    batch: int = Field(16, ge=1)
    device: str = "auto"  # "auto" picks CUDA when there is one
    workers: int = Field(2, ge=0)
    seed: int = 0


class ExportParams(Strict):
    # ONNX (FP32 + INT8) always; "ncnn" adds FP32 + INT8 ncnn models (pnnx + our own INT8 quantiser).
    formats: list[Literal["onnx", "ncnn"]] = ["onnx"]
    calibration_images: int = Field(300, ge=32)
    activation_type: Literal["U8", "S8"] = "U8"
    method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"


class EvalParams(Strict):
    threads: int = Field(2, ge=1)
    conf: float = Field(0.25, gt=0, lt=1)
    iou: float = Field(0.45, gt=0, lt=1)
    max_frames: int = Field(120, ge=1)


class PipelineConfig(Strict):
    scene: SceneParams = SceneParams()
    compose: ComposeParams = ComposeParams()
    train: TrainParams = TrainParams()
    export: ExportParams = ExportParams()
    eval: EvalParams = EvalParams()


def quick_config() -> PipelineConfig:
    """A few-minute smoke run of the whole path (CI, first look); the numbers it gives are not meaningful."""
    cfg = PipelineConfig()
    cfg.train = TrainParams(detector_epochs=1, detector_imgsz=160, classifier_epochs=1, classifier_imgsz=64, batch=8)
    cfg.export = ExportParams(calibration_images=32)
    cfg.eval = EvalParams(max_frames=20)
    return cfg
