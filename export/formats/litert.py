"""LiteRT (.tflite): FP32, FP16-weight, INT8 and full-integer INT8 through Ultralytics' litert-torch path
and ai-edge-quantizer (export/litert_export.py); heavy, so an optional extra."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from export.formats.base import ExportedModel, ExportFormat, TrainedModel, missing_modules

if TYPE_CHECKING:
    from export.params import ExportParams

EXTRA_FIX = "install the export-litert extra: pip install 'cctvkit[export-litert]'"
# module -> (pip name, lowest version): below these Ultralytics' check_requirements would want pip.
TOOLCHAIN = {
    "litert_torch": ("litert-torch", "0.10.0"),
    "ai_edge_litert": ("ai-edge-litert", "2.3.0"),
    "ai_edge_quantizer": ("ai-edge-quantizer", "0.1.0"),
}


def unsupported_host() -> str | None:
    """None on a host Ultralytics' LiteRT exporter runs on (litert-torch wheels), else why not."""
    system, machine = platform.system(), platform.machine().lower()
    if system == "Darwin" or (system == "Linux" and machine not in ("aarch64", "arm64")):
        return None
    return f"LiteRT export runs on Linux x86-64 or macOS, not {system} {machine}"


class LiteRTFormat(ExportFormat):
    name = "litert"
    summary = "LiteRT .tflite FP32, FP16 weights, INT8 and full-integer INT8 (the export-litert extra)"
    modules = ("ultralytics", *TOOLCHAIN)
    install = EXTRA_FIX

    @classmethod
    def unavailable(cls) -> str | None:
        return unsupported_host() or missing_modules(cls.modules, cls.install)

    @classmethod
    def export(
        cls, model: TrainedModel, calib: Sequence[Path], params: ExportParams, out: Path, progress: bool
    ) -> list[ExportedModel]:
        from export.litert_export import export_litert  # imports ONNX Runtime: only when exporting

        made = export_litert(model.weights, out, task=model.task, imgsz=model.imgsz, calib_images=calib,
                             name_prefix=model.tag, sha256=model.sha256)
        return [ExportedModel(variant, spec, files) for variant, spec, files in made]
