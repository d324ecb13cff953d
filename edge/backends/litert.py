"""LiteRT (TensorFlow Lite) interpreter: the usual Raspberry Pi runtime for int8 models (XNNPACK kernels).

Uses ai_edge_litert when installed, else the older tflite_runtime wheel, which has the same Interpreter API.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.backends.base import Backend
from edge.errors import CctvkitError
from edge.types import QuantParams


def load_interpreter(model_path: str, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # older Pi images ship only this wheel
    interp = Interpreter(model_path=model_path, num_threads=threads)
    interp.allocate_tensors()
    return interp


def quant_of(detail: dict[str, Any]) -> QuantParams | None:
    """Per-tensor affine quantisation of an interpreter tensor, None for float tensors."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale or np.dtype(detail["dtype"]).kind == "f":
        return None
    return QuantParams(float(scale), int(zero_point))


class LiteRTBackend(Backend):
    name = "litert"
    formats = ("tflite",)
    modules = ("ai_edge_litert", "tflite_runtime")

    def _load(self) -> None:
        self.interpreter = load_interpreter(str(self.model_path), self.threads)
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise CctvkitError(
                f"the model has {len(inputs)} inputs, cctvkit feeds one image tensor",
                self.model_path,
                "export the model with a single image input",
            )
        self._in = inputs[0]
        self._outs = self.interpreter.get_output_details()
        # The file, not the manifest, decides what goes in: a spec that disagrees would feed garbage.
        self.input_quant = quant_of(self._in)
        self.output_quant = [quant_of(d) for d in self._outs]
        model_dtype = np.dtype(self._in["dtype"]).name
        if model_dtype != self.spec.input_dtype:
            raise CctvkitError(
                f"the model takes {model_dtype} input but the ModelSpec says {self.spec.input_dtype}",
                self.model_path,
                "fix input_dtype/input_quant in the manifest (edge.backends.spec_from_tflite reads them)",
            )
        q = self.spec.input_quant
        if self.input_quant is not None and (
            q is None
            or not np.isclose(q.scale, self.input_quant.scale, rtol=1e-5)
            or q.zero_point != self.input_quant.zero_point
        ):
            raise CctvkitError(
                f"the model's input quantisation {self.input_quant} differs from the ModelSpec's {q}",
                self.model_path,
                "fix input_quant in the manifest (edge.backends.spec_from_tflite reads it)",
            )
        out_q, spec_q = self.output_quant[0] if self.output_quant else None, self.spec.output_quant
        if out_q is not None and (
            spec_q is None
            or not np.isclose(spec_q.scale, out_q.scale, rtol=1e-5)
            or spec_q.zero_point != out_q.zero_point
        ):
            raise CctvkitError(
                f"the model's output quantisation {out_q} differs from the ModelSpec's {spec_q}",
                self.model_path,
                "fix output_quant in the manifest (edge.backends.spec_from_tflite reads it)",
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._in["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._in["dtype"])

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        # get_tensor copies; the interpreter's buffers are reused by the next invoke().
        return [self.interpreter.get_tensor(d["index"]) for d in self._outs]
