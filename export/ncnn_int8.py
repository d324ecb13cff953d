"""ncnn FP32 .param/.bin -> INT8 .param/.bin: our own ncnn2table + ncnn2int8 (neither ships in a wheel).

What ncnn2int8 writes, per quantised layer (src/layer/convolution*.cpp load_model, tools/quantize):
- Convolution / InnerProduct: param 8=2; .bin: int8 weights (tag 0x000D4B38), bias, one weight scale per
  output channel, one scale for the input blob.
- ConvolutionDepthWise: param 8=1; .bin: int8 weights, bias, one weight scale per group, one input scale.
Weight scale = 127 / max|w| of the output channel (ncnn2table uses 31, i.e. 6 bits, for 3x3 stride-1
convolutions: ncnn's int8 Winograd F(4,3) kernels accumulate transformed weights in 16 bits and would
overflow with full 8-bit weights). Input scale = 127 / T with T from the calibration method (ncnn_calib).
Weights are rounded half away from zero and clamped to [-127, 127] as ncnn's float2int8 does.

Layers listed in keep_fp32 stay float; "head" keeps the detector's output convolutions (the ones whose
result reaches the model output without passing an activation: box/class predictions and DFL) and a
classifier's final InnerProduct. ncnn runs a float layer inside an int8 net unchanged.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import sha256_file
from edge.backends.ncnn import parse_param_blobs
from edge.errors import CctvkitError
from edge.types import ModelSpec
from export.ncnn_calib import (
    DEFAULT_PERCENTILE,
    NEEDS_HISTOGRAM,
    check_method,
    collect_stats,
    extract,
    open_net,
)
from export.ncnn_export import check_ncnn, cosine
from export.ncnn_model import TAG_INT8, Chunk, Layer, NcnnModel, bin_bytes, param_text, read_ncnn

QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
ACTIVATIONS = frozenset({"Swish", "ReLU", "Mish", "HardSwish", "GELU", "ELU", "SELU", "Clip", "PReLU"})
BOX_CHECK_CONF = 0.25  # the edge detector's default confidence
# ncnn's INT8 layers compute in int8 either way; this decides the storage and arithmetic of the layers kept
# float and of the blobs between layers (fp16 on ARMv8.2 when on). Measured by `make pi-check` (emulated
# Cortex-A76, the demo detector, 20 held-out frames): mAP50 0.8621 with fp16 on, 0.8521 off (FP32 0.8616),
# the same person counts as FP32 on 20/20 frames on, 18/20 off. On: as accurate, and ncnn's fast path.
NCNN_INT8_FP16 = True
MIN_OUTPUT_COSINE = 0.98  # below this the INT8 model is refused (its detections would differ visibly)


@dataclass
class LayerCheck:
    name: str
    type: str
    int8: bool
    weight_bits: int  # 8, 6 (3x3 stride-1 convolutions) or 0 (kept float)
    absmax: float  # input blob's max |x| on the calibration images
    threshold: float  # clipping threshold chosen by the method
    cosine: float  # output of this layer, INT8 net vs FP32 net, mean over the check images


def head_layers(model: NcnnModel) -> list[str]:
    """Quantisable layers whose output reaches a model output without passing an activation layer."""
    producers, found, seen = model.producers(), [], set()
    stack = list(parse_outputs(model))
    while stack:
        blob = stack.pop()
        layer = producers.get(blob)
        if layer is None or layer.name in seen or layer.type in ACTIVATIONS:
            continue
        seen.add(layer.name)
        if layer.type in QUANTIZABLE:
            found.append(layer.name)
        stack.extend(layer.bottoms)
    return [layer.name for layer in model.layers if layer.name in found]  # in file order


def parse_outputs(model: NcnnModel) -> list[str]:
    consumed = {b for layer in model.layers for b in layer.bottoms}
    return [t for layer in model.layers for t in layer.tops if t not in consumed]


def _round_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _is_winograd_conv(layer: Layer) -> bool:
    g = layer.geti
    kw, dw, sw = g(1), g(2, 1), g(3, 1)
    return (
        layer.type == "Convolution"
        and kw == 3
        and g(11, kw) == 3
        and dw == 1
        and g(12, dw) == 1
        and sw == 1
        and g(13, sw) == 1
    )


def quantize_layer(layer: Layer, input_scale: float, winograd_6bit: bool = True) -> int:
    """Rewrite one float layer in place as ncnn2int8 does; returns the weight bits used."""
    if layer.geti(8):
        raise CctvkitError(f"layer '{layer.name}' is already int8", fix="quantise the FP32 export")
    weight = layer.chunks[0]
    if weight.tag == TAG_INT8:
        raise CctvkitError(f"layer '{layer.name}' has int8 weights", fix="quantise the FP32 export")
    rows = layer.geti(7, 1) if layer.type == "ConvolutionDepthWise" else layer.geti(0)
    w = weight.values().reshape(rows, -1)
    bits = 6 if winograd_6bit and _is_winograd_conv(layer) else 8
    absmax = np.abs(w).max(axis=1)
    scales = np.where(absmax > 0, (2 ** (bits - 1) - 1) / np.where(absmax > 0, absmax, 1), 1.0)
    q = np.clip(_round_away(w * scales[:, None].astype(np.float32)), -127, 127).astype(np.int8)
    layer.chunks = [
        Chunk.tagged_int8(q),
        *layer.chunks[1:],
        Chunk.raw_f32(scales),
        Chunk.raw_f32([input_scale]),
    ]
    layer.set(8, 1 if layer.type == "ConvolutionDepthWise" else 2)
    return bits


def _write_pair(model: NcnnModel, param: Path, weights: Path) -> None:
    weights.write_bytes(bin_bytes(model))
    param.write_text(param_text(model))


@contextlib.contextmanager
def _progress(enabled: bool, total: int, what: str) -> Iterator[object]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def _output_parts(y: np.ndarray, spec: ModelSpec) -> dict[str, np.ndarray]:
    """A yolov8 detector output (4+nc, anchors) holds box pixels (0..imgsz) and scores (0..1): compared
    as one vector the boxes drown the scores, so the two are compared separately."""
    if spec.task == "detect" and spec.decoding == "yolov8" and y.ndim == 2 and y.shape[0] > 4:
        return {"boxes": y[:4], "scores": y[4:]}
    return {"output": y}


def check_layers(
    fp32: tuple[Path, Path],
    int8: tuple[Path, Path],
    model: NcnnModel,
    images: Sequence[Path],
    spec: ModelSpec,
    threads: int = 1,
) -> tuple[dict[str, float], dict[str, float], float | None]:
    """Mean cosine similarity, INT8 net vs FP32 net, of every quantisable layer's output and of the
    model output's parts (boxes/scores), over `images` (errors accumulate layer after layer); for a
    detector also the mean box coordinate error in input pixels over anchors the FP32 model scores >=
    BOX_CHECK_CONF (a box cosine near 1 still allows the few-pixel shifts mAP50-95 punishes)."""
    from export.calibration import ImageCalibrationReader

    names = [layer.name for layer in model.layers if layer.type in QUANTIZABLE]
    outputs = parse_outputs(model)
    tops = [model.layer(n).tops[0] for n in names] + outputs[:1]
    input_name = parse_param_blobs(fp32[0])[0][0]
    net_f, net_q = open_net(*fp32, threads), open_net(*int8, threads, int8=True)
    reader = ImageCalibrationReader(images, spec)
    sims = np.zeros(len(names))
    parts: dict[str, float] = {}
    box_err, box_n = 0.0, 0
    for path in images:
        x = reader.tensor(path)
        a, b = extract(net_f, input_name, x, tops, fp32[0]), extract(net_q, input_name, x, tops, int8[0])
        sims += [cosine(u, v) for u, v in zip(a[:-1], b[:-1], strict=True)]
        pa, pb = _output_parts(a[-1], spec), _output_parts(b[-1], spec)
        for k in pa:
            parts[k] = parts.get(k, 0.0) + cosine(pa[k], pb[k])
        if "boxes" in pa:
            sel = pa["scores"].max(axis=0) >= BOX_CHECK_CONF
            box_err += float(np.abs(pa["boxes"][:, sel] - pb["boxes"][:, sel]).sum())
            box_n += 4 * int(sel.sum())
    n = max(len(images), 1)
    mae = box_err / box_n if box_n else None
    return dict(zip(names, (sims / n).tolist(), strict=True)), {k: v / n for k, v in parts.items()}, mae


def format_layer_table(
    rows: Sequence[LayerCheck], outputs: dict[str, float], box_mae_px: float | None
) -> str:
    lines = [f"{'layer':<28} {'type':<20} {'int8':>4} {'wbits':>5} {'absmax':>9} {'thresh':>9} {'cosine':>8}"]
    for r in rows:
        lines.append(
            f"{r.name:<28} {r.type:<20} {'yes' if r.int8 else 'no':>4} {r.weight_bits:>5} "
            f"{r.absmax:>9.4f} {r.threshold:>9.4f} {r.cosine:>8.5f}"
        )
    for part, cos in outputs.items():
        lines.append(f"{'model ' + part:<28} {'':<20} {'':>4} {'':>5} {'':>9} {'':>9} {cos:>8.5f}")
    if box_mae_px is not None:
        lines.append(
            f"{'model box error (px, mean)':<28} {'':<20} {'':>4} {'':>5} {'':>9} {'':>9} {box_mae_px:>8.3f}"
        )
    return "\n".join(lines)


@dataclass
class Int8Result:
    spec: ModelSpec
    layers: list[LayerCheck]  # every quantisable layer, file order
    outputs: dict[str, float]  # model output parts (boxes, scores), INT8 vs FP32, mean cosine
    box_mae_px: float | None  # detector: mean box coordinate error (input pixels) on confident anchors


def quantize_ncnn_int8(
    param: Path, weights: Path, out_dir: Path, spec: ModelSpec, calib_images: Sequence[Path], **kw: Any
) -> ModelSpec:
    """quantize_ncnn_int8_report(...).spec: the INT8 model's ModelSpec (see there)."""
    return quantize_ncnn_int8_report(param, weights, out_dir, spec, calib_images, **kw).spec


def quantize_ncnn_int8_report(
    param: Path,
    weights: Path,
    out_dir: Path,
    spec: ModelSpec,
    calib_images: Sequence[Path],
    *,
    method: str = "percentile",
    percentile: float = DEFAULT_PERCENTILE,
    keep_fp32: str | Sequence[str] = "head",
    winograd_6bit: bool = True,
    check_images: int = 16,
    min_output_cosine: float = MIN_OUTPUT_COSINE,
    name: str | None = None,
    threads: int = 1,
    progress: bool = False,
) -> Int8Result:
    """INT8 copy of an FP32 ncnn model (`spec` is the FP32 export's), calibrated on calib_images (use
    export.calibration.select_calibration_images: >= 32). Returns the INT8 spec and the layer check.

    threads: ncnn threads for calibration and the check. 1 by default: the work is many short layers,
    and on a busy workstation every extra OpenMP thread waits at each layer's barrier (measured 0.13 s
    per image with 1 thread, 0.5-7 s with 2 on a loaded 2-core machine).
    keep_fp32: "head" (default), "none", or layer names to leave float. check_images: how many of the
    calibration images (evenly spread) the layer-by-layer comparison runs on. The files appear in
    out_dir (<name>.param/.bin, name default "<param stem minus -fp32>-int8") only when the model output
    keeps cosine >= min_output_cosine against the FP32 model; else CctvkitError and nothing is written.
    """
    param, weights, out_dir = Path(param), Path(weights), Path(out_dir)
    threshold_fn = check_method(method)
    if spec.format != "ncnn" or spec.precision != "fp32":
        raise CctvkitError(
            f"expected the FP32 ncnn spec, got {spec.format} {spec.precision}", param, "pass the FP32 export"
        )
    if len(calib_images) < 32:
        raise CctvkitError(
            f"only {len(calib_images)} calibration images",
            fix="select at least 32 (select_calibration_images)",
        )
    model = read_ncnn(param, weights)
    in_names, _ = parse_param_blobs(param)
    head = head_layers(model)
    keep = set(head if keep_fp32 == "head" else [] if keep_fp32 == "none" else keep_fp32)
    unknown = keep - {layer.name for layer in model.layers}
    if unknown:
        raise CctvkitError(
            f"keep_fp32 names unknown layers {sorted(unknown)}", param, "use names from the .param"
        )
    todo = [layer for layer in model.layers if layer.type in QUANTIZABLE and layer.name not in keep]
    if not todo:
        raise CctvkitError(
            "no Convolution/InnerProduct layer to quantise", param, "export a CNN (YOLO) model"
        )
    needs_hist = method in NEEDS_HISTOGRAM
    blobs = list(dict.fromkeys(layer.bottoms[0] for layer in todo))
    with _progress(progress, len(calib_images) * (2 if needs_hist else 1), f"calibrating ({method})") as step:
        stats = collect_stats(
            param,
            weights,
            in_names[0],
            blobs,
            calib_images,
            spec,
            histogram=needs_hist,
            threads=threads,
            on_step=step,  # type: ignore[arg-type]
        )
    thresholds = {b: threshold_fn(s, percentile=percentile) for b, s in stats.items()}
    bits: dict[str, int] = {}
    for layer in todo:
        t = thresholds[layer.bottoms[0]]
        if t > 0:  # an all-zero input (dead branch) has no range: leave that layer float
            bits[layer.name] = quantize_layer(layer, 127.0 / t, winograd_6bit)

    stem = param.stem.removesuffix("-fp32")
    name = name or f"{stem}-int8"
    param_out, bin_out = out_dir / f"{name}.param", out_dir / f"{name}.bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        tparam, tbin = tmp / param_out.name, tmp / bin_out.name
        _write_pair(model, tparam, tbin)
        int8_spec = ModelSpec.from_json(
            {**spec.to_json(), "precision": "int8", "path": param_out.name, "extra_files": [bin_out.name]}
        )
        check_ncnn(
            tparam, tbin, ModelSpec.from_json({**int8_spec.to_json(), "precision": "fp32"}), None, param_out
        )
        step_n = max(1, len(calib_images) // max(check_images, 1))
        sims, outputs, box_mae = check_layers(
            (param, weights),
            (tparam, tbin),
            model,
            list(calib_images)[::step_n][:check_images],
            spec,
            threads,
        )
        rows = [
            LayerCheck(
                layer.name,
                layer.type,
                layer.name in bits,
                bits.get(layer.name, 0),
                stats[layer.bottoms[0]].absmax if layer.bottoms[0] in stats else 0.0,
                thresholds.get(layer.bottoms[0], 0.0),
                sims[layer.name],
            )
            for layer in model.layers
            if layer.type in QUANTIZABLE
        ]
        out_cos = min(outputs.values())
        if out_cos < min_output_cosine:
            worst = min((r for r in rows if r.int8), key=lambda r: r.cosine)
            raise CctvkitError(
                f"INT8 output cosine {out_cos:.4f} < {min_output_cosine} against FP32 (worst layer "
                f"{worst.name}: {worst.cosine:.4f})",
                param_out,
                "try another method (kl, percentile) or keep that layer float (keep_fp32)",
            )
        tbin.replace(bin_out)
        tparam.replace(param_out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    int8_spec.notes.update(
        {
            "calibration": {"method": method, "images": len(calib_images), "image_preprocess": "edge"}
            | ({"percentile": percentile} if method == "percentile" else {}),
            "quantizer": "cctvkit ncnn2table+ncnn2int8",
            "int8_layers": len(bits),
            "fp32_layers": [r.name for r in rows if not r.int8],
            "weight_bits_3x3s1": 6 if winograd_6bit else 8,
            "layer_check": {
                "images": min(check_images, len(calib_images)),
                "min_layer_cosine": round(min(r.cosine for r in rows if r.int8), 5),
                "output_cosine": {k: round(v, 5) for k, v in outputs.items()},
                "box_mae_px": None if box_mae is None else round(box_mae, 3),
            },
            "source_sha256": sha256_file(param),
            "ncnn_fp16": NCNN_INT8_FP16,
            "weights_sha256": sha256_file(bin_out),  # the manifest's sha256 covers only the .param
        }
    )
    int8_spec.notes.pop("cosine_vs_torchscript", None)
    spec_out = ModelSpec.from_json({**int8_spec.to_json(), "sha256": sha256_file(param_out)})
    return Int8Result(spec_out, rows, outputs, box_mae)
