"""ONNX Runtime on the CPU: the reference backend (fp32/fp16 and QDQ int8 ONNX files)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.backends.base import Backend
from edge.errors import CctvkitError

# ONNX element type strings as onnxruntime reports them -> numpy
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def ort_session(model_path: str, threads: int) -> Any:
    import onnxruntime as ort  # imported here so the registry can list the backend without the runtime

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One frame at a time: parallelism between operators only adds scheduling cost on 4 small cores.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # keep ORT's warnings about unused initialisers off the camera's log
    return ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)
    modules = ("onnxruntime",)

    def _load(self) -> None:
        self.session = ort_session(str(self.model_path), self.threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise CctvkitError(
                f"the model has {len(inputs)} inputs, cctvkit feeds one image tensor",
                self.model_path,
                "export the model with a single image input",
            )
        self._input_name = inputs[0].name
        self._dtype = np.dtype(_ORT_DTYPES.get(inputs[0].type, np.float32))
        self._output_names = [o.name for o in self.session.get_outputs()]
        # Dynamic axes (batch, height, width) come back as strings or None: fill them from the spec.
        h, w = self.spec.imgsz
        fill = (1, 3, h, w) if self.spec.layout == "NCHW" else (1, h, w, 3)
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise CctvkitError(
                f"model input has rank {len(shape)}, an image model needs 4",
                self.model_path,
                "export the model with an NCHW/NHWC image input",
            )
        self._shape = tuple(
            d if isinstance(d, int) and d > 0 else f for d, f in zip(shape, fill, strict=True)
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def input_dtype(self) -> np.dtype:
        return self._dtype

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        outs = self.session.run(self._output_names, {self._input_name: x})
        return [np.asarray(o) for o in outs]
