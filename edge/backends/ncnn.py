"""ncnn (Tencent): fast ARM NEON kernels, reads the .param/.bin pair Ultralytics and pnnx write.

Blob names come from spec.notes ("input_name", "output_names") when export recorded them, else from the
.param file: the Input layer's blob goes in, blobs that no layer consumes come out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Backend
from edge.errors import CctvkitError

PARAM_MAGIC = "7767517"


def parse_param_blobs(param_path: Path) -> tuple[list[str], list[str]]:
    """(input blob names, output blob names) of a text .param file."""
    try:
        lines = param_path.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise CctvkitError(f"cannot read the ncnn .param ({e})", param_path, "re-export the model") from e
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise CctvkitError(
            f"not a text ncnn .param (first line is not {PARAM_MAGIC})", param_path, "re-export the model"
        )
    inputs: list[str] = []
    produced: list[str] = []
    consumed: set[str] = set()
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        # layer_type layer_name n_bottom n_top bottoms... tops... key=value...
        kind, n_bottom, n_top = parts[0], int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + n_bottom]
        tops = parts[4 + n_bottom : 4 + n_bottom + n_top]
        consumed.update(bottoms)
        produced.extend(tops)
        if kind == "Input":
            inputs.extend(tops)
    outputs = [b for b in produced if b not in consumed and b not in inputs]
    return inputs, outputs


def find_bin(param_path: Path, extra_files: list[str]) -> Path:
    """The weights beside the .param: the spec's listed .bin (by name) or the same stem with .bin."""
    names = [Path(f).name for f in extra_files if f.endswith(".bin")]
    candidates = [param_path.parent / n for n in names] + [param_path.with_suffix(".bin")]
    for c in candidates:
        if c.is_file():
            return c
    raise CctvkitError(
        "the ncnn weights (.bin) are missing beside the .param",
        candidates[0],
        "copy the .bin that export wrote next to the .param",
    )


class NcnnBackend(Backend):
    name = "ncnn"
    formats = ("ncnn",)
    modules = ("ncnn",)

    def _load(self) -> None:
        import ncnn  # imported here so the registry can list the backend without the runtime

        param = self.model_path
        if param.is_dir():  # an Ultralytics *_ncnn_model/ directory
            params = sorted(param.glob("*.param"))
            if len(params) != 1:
                raise CctvkitError(
                    f"expected one .param in the directory, found {len(params)}",
                    param,
                    "pass the .param file",
                )
            param = params[0]
        if self.spec.layout != "NCHW":
            raise CctvkitError("ncnn models take NCHW input", param, "set layout NCHW in the ModelSpec")
        weights = find_bin(param, self.spec.extra_files)
        in_names, out_names = parse_param_blobs(param)
        self._input_name = str(self.spec.notes.get("input_name") or (in_names[0] if in_names else ""))
        self._output_names = [str(n) for n in self.spec.notes.get("output_names") or out_names]
        if not self._input_name or not self._output_names:
            raise CctvkitError(
                "the .param has no Input layer or no output blob", param, "re-export the model"
            )

        net: Any = ncnn.Net()
        opt = net.opt
        opt.num_threads = self.threads
        opt.use_vulkan_compute = False  # the Pi's V3D GPU is slower than its CPU cores for these models
        int8 = self.spec.precision == "int8"
        opt.use_int8_inference = int8
        # fp16 storage/arithmetic halves memory traffic on ARMv8.2 (Pi 5) but rounds every blob to fp16.
        # Export records the choice per model (notes ncnn_fp16, measured by make pi-check); a spec without
        # it (older manifests, bare files) gets fp16 for fp16/int8 files and fp32 maths for an fp32 file.
        fp16 = bool(self.spec.notes.get("ncnn_fp16", self.spec.precision in ("fp16", "int8")))
        self.options = {"fp16": fp16, "int8": int8}
        opt.use_fp16_packed = fp16
        opt.use_fp16_storage = fp16
        opt.use_fp16_arithmetic = fp16
        if net.load_param(str(param)) != 0:
            raise CctvkitError("ncnn rejected the .param", param, "re-export the model with this ncnn")
        if net.load_model(str(weights)) != 0:
            raise CctvkitError("ncnn could not read the weights", weights, "re-export the model")
        self.net = net
        self._ncnn = ncnn
        h, w = self.spec.imgsz
        self._shape = (1, 3, int(h), int(w))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        ex = self.net.create_extractor()
        ex.input(self._input_name, self._ncnn.Mat(np.ascontiguousarray(x[0])))
        outs = []
        for name in self._output_names:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise CctvkitError(
                    f"ncnn could not compute blob '{name}'", self.model_path, "re-export the model"
                )
            # ncnn drops the batch axis (and any axis of size 1 in front); put the batch back.
            outs.append(np.array(mat)[None])
        return outs
