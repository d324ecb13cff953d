"""ncnn: FP32 and FP16 .param/.bin through pnnx (export/ncnn_export.py), INT8 by our own quantiser
(export/ncnn_int8.py), for ncnn's ARM NEON kernels on the device. Each spec records `ncnn_fp16` (fp16 storage
and arithmetic on ARMv8.2): on for FP16, off for FP32, NCNN_INT8_FP16 for INT8 (measured: see ncnn_int8.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from export.formats.base import ExportedModel, ExportFormat, TrainedModel

if TYPE_CHECKING:
    from export.params import ExportParams


class NcnnFormat(ExportFormat):
    name = "ncnn"
    summary = "FP32, FP16 + INT8 ncnn (pnnx + cctvkit's INT8 quantiser)"
    modules = ("ultralytics", "ncnn", "pnnx")
    install = "pip install 'cctvkit[trainer,export]'"

    @classmethod
    def export(
        cls, model: TrainedModel, calib: Sequence[Path], params: ExportParams, out: Path, progress: bool
    ) -> list[ExportedModel]:
        from export.ncnn_export import export_ncnn
        from export.ncnn_int8 import quantize_ncnn_int8

        spec32 = export_ncnn(model.weights, out, task=model.task, imgsz=model.imgsz, name=f"{model.tag}-ncnn-fp32",
                             sha256=model.sha256)
        spec16 = export_ncnn(model.weights, out, task=model.task, imgsz=model.imgsz, fp16=True,
                             name=f"{model.tag}-ncnn-fp16", sha256=model.sha256)
        spec8 = quantize_ncnn_int8(out / spec32.path, out / spec32.extra_files[0], out, spec32, calib,
                                   name=f"{model.tag}-ncnn-int8")
        return [ExportedModel(variant, spec, [out / spec.path, out / spec.extra_files[0]])
                for variant, spec in (("fp32", spec32), ("fp16", spec16), ("int8", spec8))]
