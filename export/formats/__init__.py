"""Export formats, one plug-in per file, registered by name in FORMATS.

fmt = get_format("ncnn")                       # unknown or not exportable here: CctvkitError
made = fmt.export(trained, calib_images, params, out_dir, progress)   # [ExportedModel]

Every plug-in has the same signature (export/formats/base.py); export/stage.py runs the ones the export
parameters name (`export.formats` in YAML, `trainer export --formats`), ONNX always.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.errors import CctvkitError
from export.formats.base import ExportedModel, ExportFormat, TrainedModel
from export.formats.litert import LiteRTFormat
from export.formats.ncnn import NcnnFormat
from export.formats.onnx import OnnxFormat

FORMATS: dict[str, type[ExportFormat]] = {
    "onnx": OnnxFormat,
    "ncnn": NcnnFormat,
    "litert": LiteRTFormat,
}
ALWAYS = "onnx"  # the reference every run has: experiments and bench read its FP32/INT8 models


def available_formats() -> dict[str, str | None]:
    """name -> None when the format can be exported here, else the reason it cannot."""
    return {name: fmt.unavailable() for name, fmt in FORMATS.items()}


def _choices() -> str:
    missing = "; ".join(f"{n}: {why}" for n, why in available_formats().items() if why)
    return f"choose from: {', '.join(FORMATS)}" + (f" ({missing})" if missing else " (all installed)")


def unknown_formats(names: Iterable[str]) -> str | None:
    """None when every name is a registered format, else the one-line message naming the valid ones."""
    bad = [n for n in names if n not in FORMATS]
    if not bad:
        return None
    return str(CctvkitError(f"unknown export format{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}",
                            fix=_choices()))


def get_format(name: str) -> type[ExportFormat]:
    """The plug-in for a format name; unknown names and formats not exportable here raise CctvkitError."""
    why = unknown_formats([name])
    if why is not None:
        raise CctvkitError(why)
    reason = FORMATS[name].unavailable()
    if reason is not None:
        raise CctvkitError(f"export format '{name}' is {reason}", fix=_choices())
    return FORMATS[name]


def formats_to_export(names: Iterable[str]) -> list[type[ExportFormat]]:
    """The plug-ins to run for the requested names, ONNX first and always, then in registry order (the
    manifest lists models in that order whatever order the config gave), each checked exportable here."""
    names = list(names)
    why = unknown_formats(names)
    if why is not None:
        raise CctvkitError(why)
    wanted = {ALWAYS, *names}
    return [get_format(n) for n in FORMATS if n in wanted]


def parse_formats(text: str) -> list[str]:
    """`--formats onnx,ncnn,litert` -> ["onnx", "ncnn", "litert"], names checked against the registry."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CctvkitError("--formats names no format", fix=_choices())
    why = unknown_formats(names)
    if why is not None:
        raise CctvkitError(why)
    return names


def formats_help() -> str:
    """One line per format for `trainer export --help` (no availability check: help stays instant)."""
    return "; ".join(f"{name}: {fmt.summary}" for name, fmt in FORMATS.items())


__all__ = [
    "ALWAYS",
    "FORMATS",
    "ExportFormat",
    "ExportedModel",
    "TrainedModel",
    "available_formats",
    "formats_help",
    "formats_to_export",
    "get_format",
    "parse_formats",
    "unknown_formats",
]
