"""What every inference plug-in provides: load a model file, run one input batch, hand back raw tensors.

Plug-ins stay thin on purpose: pre-processing (letterbox, quantisation of the input) and decoding live in
edge/detect so every runtime sees byte-identical inputs and its outputs go through one decoder.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edge.errors import CctvkitError
from edge.types import ModelSpec


def missing_module(*modules: str) -> str | None:
    """None when any of the modules can be imported, else why the plug-in cannot run.

    Uses find_spec so listing the backends does not pay for importing every runtime."""
    for name in modules:
        try:
            if importlib.util.find_spec(name) is not None:
                return None
        except (ImportError, ValueError):
            continue
    return f"not installed (pip install {modules[0].split('.')[0].replace('_', '-')})"


class Backend(ABC):
    """One loaded model. Subclasses set `name`, `formats` and `modules` and implement _load/_run."""

    name: str = ""
    formats: tuple[str, ...] = ()  # ModelSpec.format values this runtime reads
    modules: tuple[str, ...] = ()  # importable alternatives; the first one names the pip package
    # Runtime settings a plug-in chose from the spec that change results (bench run reports them per cell).
    options: dict[str, bool | int | str] = {}

    def __init__(self, model_path: str | Path, spec: ModelSpec, threads: int = 2):
        self.model_path = Path(model_path)
        self.spec = spec
        if threads < 1:
            raise CctvkitError(f"threads must be >= 1, got {threads}", fix="pass --threads 1 or more")
        self.threads = int(threads)
        if not self.model_path.exists():
            raise CctvkitError("model file not found", self.model_path, "check the path or re-run the export")
        why = self.unavailable()
        if why is not None:
            raise CctvkitError(
                f"backend '{self.name}' is {why}", self.model_path, "install it or pick another"
            )
        try:
            self._load()
        except CctvkitError:
            raise
        except Exception as e:  # runtimes raise anything from RuntimeError to ValueError on a bad file
            raise CctvkitError(
                f"{self.name} cannot load the model ({type(e).__name__}: {e})".replace("\n", " "),
                self.model_path,
                "re-export the model; a truncated copy or a runtime too old for it fails here",
            ) from e
        # The first inference allocates buffers and picks kernels; pay for it here, not on the first frame.
        self.run(np.zeros(self.input_shape, dtype=self.input_dtype))

    @classmethod
    def unavailable(cls) -> str | None:
        """None when this runtime can be imported, else the reason it cannot."""
        return missing_module(*cls.modules)

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the single input tensor, batch first (1, 3, H, W) or (1, H, W, 3)."""

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @abstractmethod
    def _load(self) -> None:
        """Open the model file with the runtime."""

    @abstractmethod
    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """One inference on a prepared batch; outputs in the model's own dtype, batch first."""

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        if tuple(x.shape) != tuple(self.input_shape):
            raise CctvkitError(
                f"input shape {tuple(x.shape)} does not fit the model's {tuple(self.input_shape)}",
                self.model_path,
                "check imgsz and layout in the ModelSpec",
            )
        if x.dtype != self.input_dtype:
            raise CctvkitError(
                f"input dtype {x.dtype} does not fit the model's {self.input_dtype}",
                self.model_path,
                "check input_dtype in the ModelSpec (re-read it with spec_from_tflite/spec_from_onnx)",
            )
        return self._run(np.ascontiguousarray(x))
