"""Inference runtimes, one plug-in per file, registered by name in BACKENDS.

cls = get_backend("litert")            # or default_backend(spec.format)
model = cls(model_path, spec, threads=2)
outputs = model.run(tensor)            # raw tensors in the model's own dtype
"""

from __future__ import annotations

from edge.backends.base import Backend
from edge.backends.litert import LiteRTBackend
from edge.backends.ncnn import NcnnBackend
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.backends.specs import spec_from_onnx, spec_from_tflite
from edge.errors import CctvkitError

BACKENDS: dict[str, type[Backend]] = {
    "onnxruntime": OnnxRuntimeBackend,
    "litert": LiteRTBackend,
    "ncnn": NcnnBackend,
}

# The runtime that reads each exported format when the user names none.
DEFAULT_BACKEND: dict[str, str] = {"onnx": "onnxruntime", "tflite": "litert", "ncnn": "ncnn"}


def available_backends() -> dict[str, str | None]:
    """name -> None when the runtime is importable, else the reason it is not."""
    return {name: cls.unavailable() for name, cls in BACKENDS.items()}


def _choices() -> str:
    avail = available_backends()
    names = ", ".join(BACKENDS)
    missing = "; ".join(f"{n}: {why}" for n, why in avail.items() if why)
    return f"choose one of: {names}" + (f" ({missing})" if missing else " (all installed)")


def get_backend(name: str) -> type[Backend]:
    """The plug-in class for a backend name; unknown or uninstalled names raise CctvkitError."""
    cls = BACKENDS.get(name)
    if cls is None:
        raise CctvkitError(f"unknown backend '{name}'", fix=_choices())
    why = cls.unavailable()
    if why is not None:
        raise CctvkitError(f"backend '{name}' is {why}", fix=_choices())
    return cls


def default_backend(fmt: str) -> str:
    """Backend name for a ModelSpec.format ("onnx", "tflite", "ncnn")."""
    if fmt not in DEFAULT_BACKEND:
        raise CctvkitError(
            f"no backend reads model format '{fmt}'",
            fix=f"export to one of: {', '.join(DEFAULT_BACKEND)}",
        )
    return DEFAULT_BACKEND[fmt]


def backend_for(fmt: str, name: str | None = None) -> type[Backend]:
    """The plug-in for a model format, the named one if given (checked to read that format)."""
    cls = get_backend(name or default_backend(fmt))
    if fmt not in cls.formats:
        readers = [n for n, c in BACKENDS.items() if fmt in c.formats]
        raise CctvkitError(
            f"backend '{cls.name}' cannot read {fmt} models",
            fix=f"use --backend {' or '.join(readers) or default_backend(fmt)}",
        )
    return cls


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "available_backends",
    "backend_for",
    "default_backend",
    "get_backend",
    "spec_from_onnx",
    "spec_from_tflite",
]
