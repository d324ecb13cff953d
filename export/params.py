"""The export stage's parameters (YAML `export:`, trainer/config.py puts them in the pipeline's tree)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from export.formats import unknown_formats


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names from the registry (export/formats): ONNX (FP32 + INT8) always; "ncnn" adds FP32, FP16 + INT8 ncnn
    # models (pnnx + our own INT8 quantiser); "litert" adds TFLite FP32, FP16-weight, INT8 and full-integer
    # INT8 (needs the export-litert extra). `trainer export --formats a,b` overrides this.
    formats: list[str] = ["onnx"]
    calibration_images: int = Field(300, ge=32)
    activation_type: Literal["U8", "S8"] = "U8"
    method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"
    # What stays float in the ONNX INT8 detector (export/onnx_int8.py): "box" the head's box branch and DFL conv
    # (default; measured in box_nodes' docstring), "dfl" the DFL conv only (the earlier default), "head" every
    # output conv.
    int8_keep_float: Literal["box", "dfl", "head"] = "box"
    # The verification report (export/verify.py): every model through the edge runtime on held-out labelled
    # frames against the FP32 PyTorch model; an INT8 model losing more than max_int8_drop points of
    # mAP50-95 (classifier: top-1 accuracy) fails the command. A negative limit fails every INT8 model.
    verify: bool = True
    labels: str | None = None  # YOLO images/ + labels/ folder; None: the run's scene holdout (pseudo-labels)
    negatives: str | None = None  # person-free frames for the classifier; None: holdout painted over
    verify_frames: int = Field(200, ge=1)  # at most this many labelled frames (and as many negatives)
    verify_threads: list[int] = [1, 2, 4]
    verify_timing_frames: int = Field(30, ge=1)  # timed frames per model and thread count
    max_int8_drop: float = 2.0

    @field_validator("formats")
    @classmethod
    def _registered(cls, v: list[str]) -> list[str]:
        why = unknown_formats(v)
        if why is not None:
            raise ValueError(why)
        return v
