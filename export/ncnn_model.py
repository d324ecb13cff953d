"""Read and write ncnn's text .param + .bin pair, byte for byte, so export can rewrite layers (INT8).

.param (docs/developer-guide/param-and-model-file-structure.md):
    7767517
    <layer count> <blob count>
    <type> <name> <n bottoms> <n tops> <bottoms...> <tops...> <id>=<value> ...   (arrays: -233xx=n,v,v,...)
.bin: for each layer in .param order, the arrays its load_model() reads, back to back. An array read with
type 0 ("tagged") starts with a 4-byte little-endian tag: 0 = float32, 0x01306B47 = float16 (padded to 4
bytes), 0x000D4B38 = int8 (padded to 4 bytes); type 1 ("raw") is plain float32 with no tag. Which arrays a
layer reads depends on its type and parameters (src/layer/*.cpp load_model), so the reader knows the layer
types YOLO exports contain and refuses any other type that carries weights: a wrong guess would shift every
later layer's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import CctvkitError

MAGIC = "7767517"
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056  # raw float32 "with extra scaling": same payload as fp32

# Layer types that read nothing from the .bin (ncnn src/layer/*.cpp without load_model).
_WEIGHTLESS_NAMES = (
    "AbsVal ArgMax BinaryOp Cast Clip Concat Crop CumulativeSum Dropout ELU Eltwise Erf Exp ExpandDims "
    "Flatten Fold GELU GLU HardSigmoid HardSwish Input Interp Log MatMul Mish Noop Packing Padding "
    "Permute PixelShuffle Pooling Pooling1D Pooling3D Power ReLU Reduction Reorg Reshape SELU Shrink "
    "ShuffleChannel Sigmoid Slice Softmax Split Squeeze Swish TanH Threshold Tile UnaryOp Unfold"
)
WEIGHTLESS = frozenset(_WEIGHTLESS_NAMES.split())


@dataclass
class Chunk:
    """One array of the .bin as stored: `tagged` arrays start with their 4-byte tag."""

    tagged: bool
    tag: int  # TAG_* (0 for raw arrays)
    count: int  # number of elements
    raw: bytes  # exactly the bytes in the file, tag and padding included

    def values(self) -> np.ndarray:
        """The elements as float32 (int8 weights as their integer values)."""
        body = self.raw[4:] if self.tagged else self.raw
        if self.tag == TAG_FP16:
            return np.frombuffer(body, "<f2", self.count).astype(np.float32)
        if self.tag == TAG_INT8:
            return np.frombuffer(body, np.int8, self.count).astype(np.float32)
        return np.frombuffer(body, "<f4", self.count).copy()

    @staticmethod
    def raw_f32(values: np.ndarray) -> Chunk:
        v = np.ascontiguousarray(values, "<f4").reshape(-1)
        return Chunk(False, TAG_FP32, v.size, v.tobytes())

    @staticmethod
    def tagged_f32(values: np.ndarray) -> Chunk:
        v = np.ascontiguousarray(values, "<f4").reshape(-1)
        return Chunk(True, TAG_FP32, v.size, np.uint32(TAG_FP32).tobytes() + v.tobytes())

    @staticmethod
    def tagged_int8(values: np.ndarray) -> Chunk:
        v = np.ascontiguousarray(values, np.int8).reshape(-1)
        pad = b"\0" * (-v.size % 4)
        return Chunk(True, TAG_INT8, v.size, np.uint32(TAG_INT8).astype("<u4").tobytes() + v.tobytes() + pad)


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str]  # id -> value text as written (arrays keep their "n,v,v" text)
    line: str  # the .param line as read; rewritten only when `changed`
    chunks: list[Chunk] = field(default_factory=list)
    changed: bool = False

    def geti(self, key: int, default: int = 0) -> int:
        v = self.params.get(key)
        return default if v is None else int(float(v))

    def set(self, key: int, value: int | float | str) -> None:
        self.params[key] = str(value)
        self.changed = True

    def to_line(self) -> str:
        if not self.changed:
            return self.line
        head = f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)}"
        blobs = "".join(f" {b}" for b in self.bottoms + self.tops)
        return head + blobs + "".join(f" {k}={v}" for k, v in self.params.items())


@dataclass
class NcnnModel:
    layers: list[Layer]
    blob_count: int
    param_path: Path
    bin_path: Path

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def consumers(self) -> dict[str, list[Layer]]:
        out: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.bottoms:
                out.setdefault(b, []).append(layer)
        return out

    def producers(self) -> dict[str, Layer]:
        return {t: layer for layer in self.layers for t in layer.tops}


def _param_error(path: Path, line_no: int, why: str) -> CctvkitError:
    return CctvkitError(
        f"line {line_no}: {why}", path, "re-export the model (pnnx writes valid .param files)"
    )


def parse_param(param_path: Path) -> tuple[list[Layer], int]:
    """Layers (without weights) and the blob count of a text .param."""
    param_path = Path(param_path)
    try:
        text = param_path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CctvkitError(f"cannot read the ncnn .param ({e})", param_path, "re-export the model") from e
    lines = text.split("\n")
    if lines[0].strip() != MAGIC:
        raise CctvkitError(
            f"not a text ncnn .param (first line is not {MAGIC})", param_path, "re-export the model"
        )
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise _param_error(param_path, 2, "expected '<layer count> <blob count>'") from None
    layers: list[Layer] = []
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise _param_error(param_path, i, f"truncated layer line '{line.strip()[:60]}'")
        try:
            nb, nt = int(parts[2]), int(parts[3])
        except ValueError:
            raise _param_error(param_path, i, "bottom/top counts are not integers") from None
        if nb < 0 or nt < 0 or len(parts) < 4 + nb + nt:
            raise _param_error(param_path, i, f"layer '{parts[1]}' lists fewer blobs than it declares")
        params: dict[int, str] = {}
        for kv in parts[4 + nb + nt :]:
            key, sep, value = kv.partition("=")
            try:
                params[int(key)] = value
            except ValueError:
                raise _param_error(param_path, i, f"bad parameter '{kv}' in layer '{parts[1]}'") from None
            if not sep or not value:
                raise _param_error(param_path, i, f"bad parameter '{kv}' in layer '{parts[1]}'")
        layers.append(
            Layer(
                parts[0], parts[1], parts[4 : 4 + nb], parts[4 + nb : 4 + nb + nt], params, line.rstrip("\r")
            )
        )
    if len(layers) != layer_count:
        raise _param_error(param_path, 2, f"header says {layer_count} layers, the file has {len(layers)}")
    return layers, blob_count


def _array_counts(layer: Layer) -> list[tuple[bool, int]]:
    """(tagged, element count) of each array load_model() reads for this layer, in order."""
    t, g = layer.type, layer.geti
    if t in WEIGHTLESS:
        return []
    if t == "Gemm":
        if g(7) or g(8):
            raise ValueError("Gemm with constant matrices")
        return []
    if t in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
        if g(19) or (t.startswith("Deconvolution") and g(28)):
            return []  # dynamic weights come from a blob
        num_output, int8 = g(0), g(8)
        arrays = [(True, g(6))] + ([(False, num_output)] if g(5) else [])
        if int8 and t == "Convolution":
            arrays += [(False, num_output), (False, 1)]
        elif int8 and t == "ConvolutionDepthWise":
            group = g(7, 1)
            arrays += [(False, group if int8 % 100 == 1 else 1), (False, 1)]
        elif int8:
            raise ValueError(f"int8 {t}")
        if int8 > 100:
            arrays.append((False, 1))
        return arrays
    if t == "InnerProduct":
        arrays = [(True, g(2))] + ([(False, g(0))] if g(1) else [])
        if g(8):
            arrays += [(False, g(0)), (False, 1)]
        return arrays
    if t == "MemoryData":
        w, h, d, c = g(0), g(1), g(11), g(2)
        if w == 0:
            return []
        return [(g(21, 1) == 0, w * max(h, 1) * max(d, 1) * max(c, 1))]
    if t == "BatchNorm":
        return [(False, g(0))] * 4  # slope, mean, var, bias
    if t == "Scale":
        n = g(0)
        return [] if n == -233 else [(False, n)] + ([(False, n)] if g(1) else [])
    if t in ("PReLU", "Bias"):
        return [(False, g(0))]
    raise ValueError(f"layer type {t}")


def _read_chunk(data: bytes, pos: int, tagged: bool, count: int) -> tuple[Chunk, int]:
    if not tagged:
        end = pos + 4 * count
        if end > len(data):
            raise EOFError
        return Chunk(False, TAG_FP32, count, data[pos:end]), end
    if pos + 4 > len(data):
        raise EOFError
    tag = int(np.frombuffer(data, "<u4", 1, pos)[0])
    if tag == TAG_FP16:
        size = 2 * count + (-2 * count % 4)
    elif tag == TAG_INT8:
        size = count + (-count % 4)
    elif tag in (TAG_FP32, TAG_FP32_SCALED):
        size = 4 * count
    else:
        raise ValueError(f"tag 0x{tag:08X} (a quantised lookup-table array)")
    end = pos + 4 + size
    if end > len(data):
        raise EOFError
    return Chunk(True, tag, count, data[pos:end]), end


def read_ncnn(param_path: Path, bin_path: Path) -> NcnnModel:
    """Parse a .param/.bin pair; every byte of the .bin must belong to one layer array."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    layers, blob_count = parse_param(param_path)
    try:
        data = bin_path.read_bytes()
    except OSError as e:
        raise CctvkitError(f"cannot read the ncnn weights ({e})", bin_path, "re-export the model") from e
    pos = 0
    for layer in layers:
        try:
            for tagged, count in _array_counts(layer):
                chunk, pos = _read_chunk(data, pos, tagged, count)
                layer.chunks.append(chunk)
        except ValueError as e:
            raise CctvkitError(
                f"layer '{layer.name}': unsupported {e}", param_path, "export a YOLO11/YOLOv8 model with pnnx"
            ) from None
        except EOFError:
            raise CctvkitError(
                f"the weights end inside layer '{layer.name}' ({len(data)} bytes)",
                bin_path,
                "the .bin does not belong to this .param or is truncated: re-export the model",
            ) from None
    if pos != len(data):  # ncnn would ignore them, but they mean the .bin was written for another .param
        raise CctvkitError(
            f"{len(data) - pos} bytes are left after the last layer's weights",
            bin_path,
            "the .bin does not belong to this .param: re-export the model",
        )
    return NcnnModel(layers, blob_count, param_path, bin_path)


def param_text(model: NcnnModel) -> str:
    lines = [MAGIC, f"{len(model.layers)} {model.blob_count}"] + [layer.to_line() for layer in model.layers]
    return "\n".join(lines) + "\n"


def bin_bytes(model: NcnnModel) -> bytes:
    return b"".join(c.raw for layer in model.layers for c in layer.chunks)
