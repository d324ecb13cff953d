"""ncnn .param/.bin reader/writer and the INT8 layer rewrite, on small hand-built models (no torch, fast)."""

from __future__ import annotations

import math
from pathlib import Path

import ncnn
import numpy as np
import pytest

from edge.errors import CctvkitError
from export.ncnn_calib import (
    BINS,
    BlobStats,
    threshold_aciq,
    threshold_kl,
    threshold_max,
    threshold_percentile,
)
from export.ncnn_export import cosine
from export.ncnn_int8 import head_layers, quantize_layer, quantize_ncnn_int8
from export.ncnn_model import TAG_FP16, TAG_INT8, bin_bytes, param_text, read_ncnn

PARAM = """7767517
9 9
Input                    in0                      0 1 in0 0=8 1=8 2=3
Convolution              conv0                    1 1 in0 c0 0=4 1=3 4=1 5=1 6=108
Swish                    act0                     1 1 c0 a0
ConvolutionDepthWise     dw0                      1 1 a0 d0 0=4 1=3 4=1 5=1 6=36 7=4
BatchNorm                bn0                      1 1 d0 b0 0=4
Convolution              conv1                    1 1 b0 p0 0=4 1=1 3=2 5=1 6=16
InnerProduct             fc0                      1 1 p0 f0 0=3 1=1 2=192
MemoryData               md0                      0 1 m0 0=3
BinaryOp                 add0                     2 1 f0 m0 out0 0=0
"""


def make_model(folder: Path, fp16: bool = False, seed: int = 0) -> tuple[Path, Path]:
    """The PARAM network with random weights; conv0's weights tagged fp16 when asked."""
    rng = np.random.default_rng(seed)

    def raw(n: int, positive: bool = False) -> bytes:
        v = rng.normal(0, 0.3, n)
        return (np.abs(v) + 0.5 if positive else v).astype("<f4").tobytes()

    def tagged(n: int, half: bool = False) -> bytes:
        v = rng.normal(0, 0.3, n)
        if half:
            body = v.astype("<f2").tobytes()
            return np.uint32(TAG_FP16).tobytes() + body + b"\0" * (-len(body) % 4)
        return np.uint32(0).tobytes() + v.astype("<f4").tobytes()

    parts = [
        tagged(108, fp16) + raw(4),  # conv0: weights (tagged), bias (raw)
        tagged(36) + raw(4),  # dw0
        raw(4, True) + raw(4) + raw(4, True) + raw(4),  # bn0: slope, mean, var, bias
        tagged(16) + raw(4),  # conv1
        tagged(192) + raw(3),  # fc0
        raw(3),  # md0
    ]
    folder.mkdir(parents=True, exist_ok=True)
    param, weights = folder / "m.param", folder / "m.bin"
    param.write_text(PARAM)
    weights.write_bytes(b"".join(parts))
    return param, weights


def run(param: Path, weights: Path, x: np.ndarray, int8: bool = False) -> np.ndarray:
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_int8_inference = int8
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(np.ascontiguousarray(x)))
    ret, out = ex.extract("out0")
    assert ret == 0
    return np.array(out)


@pytest.mark.parametrize("fp16", [False, True])
def test_round_trip_is_byte_identical_and_ncnn_loads_it(tmp_path: Path, fp16: bool) -> None:
    param, weights = make_model(tmp_path, fp16=fp16)
    model = read_ncnn(param, weights)
    assert [len(layer.chunks) for layer in model.layers] == [0, 2, 0, 2, 4, 2, 2, 1, 0]
    assert param_text(model) == param.read_text()
    assert bin_bytes(model) == weights.read_bytes()
    assert model.layer("conv0").chunks[0].tag == (TAG_FP16 if fp16 else 0)
    assert model.layer("conv0").chunks[0].values().shape == (108,)
    y = run(param, weights, np.random.default_rng(1).uniform(0, 1, (3, 8, 8)).astype(np.float32))
    assert y.shape == (3,) and np.isfinite(y).all()


def test_corrupt_files_raise_errors_naming_them(tmp_path: Path) -> None:
    param, weights = make_model(tmp_path)
    bad = tmp_path / "bad.param"
    for text, msg in [
        ("7767518\n1 1\n", "not a text ncnn .param"),
        ("7767517\nx\n", "line 2: expected '<layer count> <blob count>'"),
        ("7767517\n2 1\nInput in0 0 1 in0\n", "header says 2 layers, the file has 1"),
        ("7767517\n1 1\nInput in0 0\n", "line 3: truncated layer line"),
        ("7767517\n1 1\nInput in0 0 2 in0\n", "lists fewer blobs than it declares"),
        ("7767517\n1 1\nInput in0 0 1 in0 0=\n", "bad parameter '0='"),
        ("7767517\n1 1\nLSTM lstm0 0 1 in0 0=4\n", "layer 'lstm0': unsupported layer type LSTM"),
    ]:
        bad.write_text(text)
        with pytest.raises(CctvkitError, match=rf"^{bad}: .*{msg}"):
            read_ncnn(bad, weights)
    short = tmp_path / "short.bin"
    short.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(CctvkitError, match=rf"^{short}: the weights end inside layer 'md0'"):
        read_ncnn(param, short)
    long = tmp_path / "long.bin"
    long.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(CctvkitError, match=rf"^{long}: 8 bytes are left after the last layer's weights"):
        read_ncnn(param, long)
    with pytest.raises(CctvkitError, match="cannot read the ncnn weights"):
        read_ncnn(param, tmp_path / "missing.bin")


def test_quantized_layers_follow_ncnn2int8_layout_and_run_int8(tmp_path: Path) -> None:
    param, weights = make_model(tmp_path / "fp32")
    x = np.random.default_rng(2).uniform(0, 1, (3, 8, 8)).astype(np.float32)
    model = read_ncnn(param, weights)
    w_conv0 = model.layer("conv0").chunks[0].values().reshape(4, 27)
    assert quantize_layer(model.layer("conv0"), 127.0) == 6  # 3x3 stride 1: ncnn's 6-bit winograd weights
    assert quantize_layer(model.layer("conv1"), 127.0 / 3) == 8
    assert quantize_layer(model.layer("dw0"), 127.0 / 3) == 8
    assert quantize_layer(model.layer("fc0"), 127.0 / 3) == 8
    out = tmp_path / "int8"
    out.mkdir()
    qparam, qbin = out / "m.param", out / "m.bin"
    qparam.write_text(param_text(model))
    qbin.write_bytes(bin_bytes(model))

    text = qparam.read_text()
    assert " 8=2" in text.split("\n")[3] and " 8=1" in text.split("\n")[5] and " 8=2" in text.split("\n")[8]
    conv0 = read_ncnn(qparam, qbin).layer("conv0")  # re-read: the int8 layout parses back to the same bytes
    assert bin_bytes(read_ncnn(qparam, qbin)) == qbin.read_bytes()
    assert [c.tag for c in conv0.chunks] == [TAG_INT8, 0, 0, 0]
    assert [c.count for c in conv0.chunks] == [108, 4, 4, 1]  # weights, bias, weight scales, input scale
    scales = conv0.chunks[2].values()
    np.testing.assert_allclose(scales, 31 / np.abs(w_conv0).max(axis=1), rtol=1e-6)
    q = conv0.chunks[0].values().reshape(4, 27)
    assert np.abs(q).max() == 31
    assert np.abs(q / scales[:, None] - w_conv0).max() <= 0.5 / scales.min() + 1e-6
    assert [c.count for c in read_ncnn(qparam, qbin).layer("dw0").chunks] == [36, 4, 4, 1]  # per-group scales

    y32, y8 = run(param, weights, x), run(qparam, qbin, x, int8=True)
    assert cosine(y32, y8) > 0.99 and not np.array_equal(y32, y8)  # really ran int8, and close
    with pytest.raises(CctvkitError, match="already int8"):
        quantize_layer(conv0, 1.0)


def test_head_layers_are_the_convs_before_the_output_without_activation(tmp_path: Path) -> None:
    model = read_ncnn(*make_model(tmp_path))
    # fc0 -> add0 -> out0 has no activation; walking back stops at act0 (Swish), so conv0 is not head
    assert head_layers(model) == ["dw0", "conv1", "fc0"]


def _ref_kl(hist: np.ndarray, absmax: float) -> float:
    """ncnn2table quantize_KL's threshold search, transcribed statement for statement."""
    hn, tb = list(hist / hist.sum()), 128
    best, best_kl = tb, math.inf
    for t in range(tb, BINS):
        clip = [1e-4 + hn[j] for j in range(t)]
        clip[t - 1] += sum(hn[t:])
        npb = t / tb
        q = [0.0] * tb
        rl = math.floor(npb)
        rs = npb - rl
        if rs > 0:
            q[0] += rs * hn[rl]
        q[0] = (q[0] + sum(hn[:rl])) / (rl + rs)
        for j in range(1, tb - 1):
            s, e = j * npb, (j + 1) * npb
            lu, rl = math.ceil(s), math.floor(e)
            ls, rs = lu - s, e - rl
            if ls > 0:
                q[j] += ls * hn[lu - 1]
            if rs > 0:
                q[j] += rs * hn[rl]
            q[j] = (q[j] + sum(hn[lu:rl])) / (rl - lu + ls + rs)
        s = t - npb
        lu = math.ceil(s)
        ls = lu - s
        if ls > 0:
            q[tb - 1] += ls * hn[lu - 1]
        q[tb - 1] = (q[tb - 1] + sum(hn[lu:t])) / (t - lu + ls)
        ex = [1e-4] * t
        rl = math.floor(npb)
        rs = npb - rl
        if rs > 0:
            ex[rl] += rs * q[0]
        for k in range(rl):
            ex[k] += q[0]
        for j in range(1, tb - 1):
            s, e = j * npb, (j + 1) * npb
            lu, rl = math.ceil(s), math.floor(e)
            ls, rs = lu - s, e - rl
            if ls > 0:
                ex[lu - 1] += ls * q[j]
            if rs > 0:
                ex[rl] += rs * q[j]
            for k in range(lu, rl):
                ex[k] += q[j]
        s = t - npb
        lu = math.ceil(s)
        ls = lu - s
        if ls > 0:
            ex[lu - 1] += ls * q[tb - 1]
        for k in range(lu, t):
            ex[k] += q[tb - 1]
        kl = sum(a * math.log(a / b) for a, b in zip(clip, ex, strict=True))
        if kl < best_kl:
            best_kl, best = kl, t
    return (best + 0.5) * absmax / BINS


def test_thresholds() -> None:
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_t(3, 100_000))
    absmax = float(x.max())
    hist = np.bincount(np.minimum((x / absmax * BINS).astype(int), BINS - 1), minlength=BINS)
    s = BlobStats(absmax, x.size, hist)
    assert threshold_max(s) == absmax
    assert threshold_percentile(s, percentile=99.0) == pytest.approx(np.percentile(x, 99.0), rel=0.01)
    assert 0 < threshold_aciq(s) < absmax
    kl = threshold_kl(s)
    assert kl == pytest.approx(_ref_kl(hist.astype(np.float64), absmax), rel=1e-9)
    assert kl < absmax / 2  # t-distribution tails: KL clips far below the max


def test_bad_arguments_fail_before_any_work(tmp_path: Path) -> None:
    from edge.types import ModelSpec

    spec = ModelSpec("detect", "ncnn", "fp32", "m.param", (64, 64), ["person"])
    images = [tmp_path / f"{i}.jpg" for i in range(31)]
    p, b = tmp_path / "m.param", tmp_path / "m.bin"
    with pytest.raises(CctvkitError, match="only 31 calibration images -- select at least 32"):
        quantize_ncnn_int8(p, b, tmp_path, spec, images)
    with pytest.raises(
        CctvkitError, match="unknown calibration method 'minmax' -- choose one of: max, percentile"
    ):
        quantize_ncnn_int8(p, b, tmp_path, spec, images * 2, method="minmax")
    int8 = ModelSpec("detect", "ncnn", "int8", "m.param", (64, 64), ["person"])
    with pytest.raises(CctvkitError, match="expected the FP32 ncnn spec"):
        quantize_ncnn_int8(p, b, tmp_path, int8, images * 2)
    assert list(tmp_path.iterdir()) == []
