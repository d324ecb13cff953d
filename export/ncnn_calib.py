"""Activation ranges of an FP32 ncnn model on calibration images, as ncnn2table measures them.

For every quantisable layer (Convolution, ConvolutionDepthWise, InnerProduct) the input blob is
extracted from the float model, fed exactly as the device feeds frames (edge.detect.preprocess via
ImageCalibrationReader). One pass finds each blob's |x| maximum; methods that need the distribution
run a second pass filling a 2048-bin histogram of |x| over [0, max] (zeros left out, as ncnn2table does).
A method turns those statistics into a clipping threshold T; the blob's INT8 scale is 127 / T.

Methods (plain dict below; ncnn2table's names in brackets):
- max:        T = max |x|. Nothing clipped; coarse steps when one outlier sets the range.
- percentile: T = the p-th percentile of |x| (default 99.999). Clips rare outliers.
- aciq:       [aciq] T from a Gaussian fit of the range (Banner et al.), as ncnn2table computes it.
- kl:         [kl] T minimising the KL divergence between the histogram and its 128-level version.
              On the demo YOLO11n it clipped the head's inputs to 1/8 of their range (layer cosine 0.24,
              mAP50 -6.5 points); kept for comparison, not as the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import CctvkitError
from edge.types import ModelSpec
from export.calibration import ImageCalibrationReader

BINS = 2048  # ncnn2table's histogram size
KL_TARGET_BINS = 128  # int8 magnitude levels (sign handled by symmetry)
DEFAULT_PERCENTILE = 99.999  # best INT8-vs-FP32 agreement on the demo detector (99.99, 99.9 clip more)


@dataclass
class BlobStats:
    absmax: float = 0.0
    elements: int = 0  # elements of the blob in one image (ACIQ's N)
    hist: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))


def threshold_max(s: BlobStats, **_: Any) -> float:
    return s.absmax


def threshold_percentile(s: BlobStats, percentile: float = DEFAULT_PERCENTILE, **_: Any) -> float:
    total = int(s.hist.sum())
    if total == 0:
        return s.absmax
    cdf = np.cumsum(s.hist) / total
    i = int(np.searchsorted(cdf, percentile / 100.0))
    if i >= BINS - 1:
        return s.absmax
    # linear inside the bin where the cumulative share crosses the percentile
    lo = cdf[i - 1] if i > 0 else 0.0
    frac = (percentile / 100.0 - lo) / max(cdf[i] - lo, 1e-12)
    return float((i + frac) * s.absmax / BINS)


def threshold_aciq(s: BlobStats, **_: Any) -> float:
    """ncnn2table compute_aciq_gaussian_clip(absmax, N) for 8 bits."""
    if s.elements < 2:
        return s.absmax
    gaussian_const = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))
    std = (s.absmax * 2 * gaussian_const) / math.sqrt(2 * math.log(s.elements))
    return float(min(3.92403714 * std, s.absmax))


def _spread(values: np.ndarray, out_len: int, threshold: int) -> np.ndarray:
    """Sum of `values` over the fractional bins [j*r, (j+1)*r) of a length-`threshold` axis (r =
    threshold/out_len): the 128-level view of the clipped histogram, as in ncnn2table."""
    edges = np.arange(out_len + 1) * (threshold / out_len)
    cum = np.concatenate([[0.0], np.cumsum(values)])

    def at(x: np.ndarray) -> np.ndarray:  # cumulative sum at fractional positions (linear within a bin)
        k = np.minimum(np.floor(x).astype(np.int64), threshold - 1)
        return cum[k] + (x - k) * values[k]

    return at(edges[1:]) - at(edges[:-1])


def threshold_kl(s: BlobStats, **_: Any) -> float:
    """ncnn2table quantize_KL: for each candidate threshold t (128..2047 bins) compare the clipped
    distribution P (tail folded into the last bin) with Q = P squeezed into 128 levels and expanded back
    (each level's mass spread evenly over its span); pick the t with the smallest KL(P || Q)."""
    total = s.hist.sum()
    if total == 0 or s.absmax == 0:
        return s.absmax
    p_all = s.hist / total
    eps = 1e-4
    best_t, best_kl = KL_TARGET_BINS, math.inf
    tail = np.concatenate([np.cumsum(p_all[::-1])[::-1], [0.0]])  # tail[t] = sum(p_all[t:])
    for t in range(KL_TARGET_BINS, BINS):
        clip = p_all[:t].copy()
        clip[t - 1] += tail[t]
        width = t / KL_TARGET_BINS
        # ncnn2table builds the levels from the unclipped histogram (the tail is not folded in here)
        q = _spread(p_all[:t], KL_TARGET_BINS, t) / width  # mean mass per original bin of each level
        # expand back: every original bin receives its overlap with each level times the level's mean
        idx = np.arange(t)
        lo_level = np.minimum((idx / width).astype(np.int64), KL_TARGET_BINS - 1)
        hi_level = np.minimum(((idx + 1) / width - 1e-9).astype(np.int64), KL_TARGET_BINS - 1)
        split = np.minimum((lo_level + 1) * width, idx + 1) - idx  # part of bin idx inside lo_level
        expand = np.where(lo_level == hi_level, q[lo_level], split * q[lo_level] + (1 - split) * q[hi_level])
        pa, pb = clip + eps, expand + eps
        kl = float(np.sum(pa * np.log(pa / pb)))
        if kl < best_kl:
            best_kl, best_t = kl, t
    return float((best_t + 0.5) * s.absmax / BINS)


METHODS: dict[str, Callable[..., float]] = {
    "max": threshold_max,
    "percentile": threshold_percentile,
    "aciq": threshold_aciq,
    "kl": threshold_kl,
}
NEEDS_HISTOGRAM = {"percentile", "kl"}


def check_method(method: str) -> Callable[..., float]:
    if method not in METHODS:
        raise CctvkitError(
            f"unknown calibration method '{method}'", fix=f"choose one of: {', '.join(METHODS)}"
        )
    return METHODS[method]


def open_net(param: Path, weights: Path, threads: int, int8: bool = False, fp16: bool = False) -> Any:
    """An ncnn.Net that keeps every intermediate blob (light mode off is set per extractor)."""
    import ncnn

    net: Any = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    net.opt.use_int8_inference = int8
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
    if net.load_param(str(param)) != 0:
        raise CctvkitError("ncnn rejected the .param", param, "re-export the model")
    if net.load_model(str(weights)) != 0:
        raise CctvkitError("ncnn could not read the weights", weights, "re-export the model")
    return net


def extract(net: Any, input_name: str, x: np.ndarray, blobs: Sequence[str], where: Path) -> list[np.ndarray]:
    """The named blobs of one forward pass (float32, ncnn layout without the batch axis)."""
    import ncnn

    ex = net.create_extractor()
    ex.set_light_mode(False)  # keep intermediate blobs: we read many of them from one pass
    ex.input(input_name, ncnn.Mat(np.ascontiguousarray(x[0], np.float32)))
    out = []
    for b in blobs:
        ret, mat = ex.extract(b)
        if ret != 0:
            raise CctvkitError(f"ncnn could not compute blob '{b}'", where, "re-export the model")
        out.append(np.array(mat, dtype=np.float32, copy=True))
    return out


def collect_stats(
    param: Path,
    weights: Path,
    input_name: str,
    blobs: Sequence[str],
    images: Sequence[Path],
    spec: ModelSpec,
    *,
    histogram: bool,
    threads: int = 1,
    on_step: Callable[[], None] | None = None,
) -> dict[str, BlobStats]:
    """absmax (and, with `histogram`, the |x| histogram) of each blob over the images.
    on_step is called once per image per pass (1 or 2 passes)."""
    net = open_net(param, weights, threads)
    reader = ImageCalibrationReader(images, spec)
    stats = {b: BlobStats() for b in blobs}
    for path in images:
        for b, arr in zip(blobs, extract(net, input_name, reader.tensor(path), blobs, param), strict=True):
            s = stats[b]
            s.absmax = max(s.absmax, float(np.abs(arr).max(initial=0.0)))
            s.elements = arr.size
        if on_step:
            on_step()
    if not histogram:
        return stats
    for path in images:
        for b, arr in zip(blobs, extract(net, input_name, reader.tensor(path), blobs, param), strict=True):
            s = stats[b]
            if s.absmax == 0:
                continue
            a = np.abs(arr[arr != 0])
            idx = np.minimum((a * (BINS / s.absmax)).astype(np.int64), BINS - 1)
            s.hist += np.bincount(idx, minlength=BINS)
        if on_step:
            on_step()
    return stats
