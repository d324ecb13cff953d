"""ONNX: FP32 through Ultralytics (export/onnx_export.py), INT8 by ONNX Runtime static quantisation
(export/onnx_int8.py) calibrated on what the device feeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from export.formats.base import ExportedModel, ExportFormat, TrainedModel

if TYPE_CHECKING:
    from export.params import ExportParams


class OnnxFormat(ExportFormat):
    name = "onnx"
    summary = "FP32 + INT8 ONNX (ONNX Runtime on the device)"
    modules = ("ultralytics", "onnx", "onnxruntime", "onnxslim")
    install = "pip install 'cctvkit[trainer,export]'"

    @classmethod
    def export(
        cls, model: TrainedModel, calib: Sequence[Path], params: ExportParams, out: Path, progress: bool
    ) -> list[ExportedModel]:
        from export.onnx_export import export_onnx
        from export.onnx_int8 import quantize_onnx_int8

        fp32_path = out / f"{model.tag}-fp32.onnx"
        spec32 = export_onnx(model.weights, fp32_path, task=model.task, imgsz=model.imgsz, sha256=model.sha256)
        int8_path = out / f"{model.tag}-int8.onnx"
        spec8 = quantize_onnx_int8(fp32_path, int8_path, spec32, calib, activation_type=params.activation_type,
                                   method=params.method, keep_fp32=params.int8_keep_float, progress=progress)
        return [ExportedModel("fp32", spec32, [fp32_path]), ExportedModel("int8", spec8, [int8_path])]
