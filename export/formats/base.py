"""What every export plug-in provides: one trained .pt + calibration images + the export parameters in,
the device models of one format out (files in the stage folder, each with its ModelSpec)."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.types import ModelSpec

if TYPE_CHECKING:  # export.params validates format names through the registry, which imports the plug-ins
    from export.params import ExportParams


@dataclass(frozen=True)
class TrainedModel:
    """One .pt of the train stage, at the input size it was trained at."""

    tag: str  # "detector" | "classifier": the prefix of its files and of its manifest model names
    weights: Path
    sha256: str  # what the train stage recorded: the exporters load only these bytes (export/pt_trust.py)
    task: str  # "detect" | "classify"
    imgsz: int


@dataclass(frozen=True)
class ExportedModel:
    """One device model: its manifest name is <tag>-<spec.format>-<variant>."""

    variant: str  # "fp32", "int8", "fp16", "fullint8" (LiteRT's integer-only int8; spec.precision "int8")
    spec: ModelSpec  # path: the main file's name inside the stage folder
    files: list[Path]  # the main file first, then what it needs beside it (the ncnn .bin)


def missing_modules(modules: Sequence[str], install: str) -> str | None:
    """None when every module can be imported, else why the format cannot be exported here. find_spec
    only: listing the formats (`trainer export --help`) must not pay for importing torch or litert-torch."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"not installed ({name} is missing: {install})"
    return None


class ExportFormat(ABC):
    """One format. Subclasses set `name`, `summary`, `modules`, `install` and implement export()."""

    name: str = ""
    summary: str = ""  # one line for `trainer export --help`
    modules: tuple[str, ...] = ()  # all needed to export this format
    install: str = ""  # the fix when one is missing

    @classmethod
    def unavailable(cls) -> str | None:
        """None when this format can be exported here, else the reason it cannot."""
        return missing_modules(cls.modules, cls.install)

    @classmethod
    @abstractmethod
    def export(
        cls, model: TrainedModel, calib: Sequence[Path], params: ExportParams, out: Path, progress: bool
    ) -> list[ExportedModel]:
        """Write this format's models of `model` into `out` (the stage's folder) and return them."""
