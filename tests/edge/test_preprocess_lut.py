"""to_tensor's lookup-table path is bit-identical to the formula it replaces: for every pixel value,
every input dtype and layout, on random and on real video frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detect.preprocess import (
    input_lut,
    letterbox,
    prepare_classification,
    prepare_detection,
    reference_tensor,
    to_tensor,
)
from edge.types import ModelSpec, QuantParams


def formula(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The input definition as it was written before the LUT, copied here so a change to the module's
    reference cannot move both sides of the comparison at once."""
    if spec.input_dtype == "uint8":
        x = rgb
    else:
        x = rgb.astype(np.float32) / np.float32(255.0)
        if spec.input_dtype == "int8":
            q = spec.input_quant
            assert q is not None
            x = np.clip(np.round(x / q.scale + q.zero_point), -128, 127).astype(np.int8)
        elif spec.input_dtype == "float16":
            x = x.astype(np.float16)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def spec_for(dtype: str, layout: str, quant: QuantParams | None = None) -> ModelSpec:
    return ModelSpec(
        task="detect",
        format="tflite",
        precision="int8" if dtype == "int8" else "fp32",
        path=f"model-{dtype}.bin",
        imgsz=(64, 96),
        class_names=["person"],
        layout=layout,  # type: ignore[arg-type]
        input_dtype=dtype,  # type: ignore[arg-type]
        input_quant=quant,
    )


QUANTS = [
    QuantParams(1 / 255, -128),  # what LiteRT full-integer exports of 0..1 inputs carry
    QuantParams(0.003921568859368563, -128),  # the same, as the float32 a .tflite stores
    QuantParams(0.0173, 3),  # odd scale: rounding ties and values between steps
    QuantParams(0.001, 0),  # too fine for 0..1: most pixels clip at 127
    QuantParams(0.5, 100),  # coarse: many pixels share a step
]
SPECS = [spec_for(d, lay) for d in ("float32", "float16", "uint8") for lay in ("NCHW", "NHWC")] + [
    spec_for("int8", lay, q) for q in QUANTS for lay in ("NCHW", "NHWC")
]
IDS = [f"{s.input_dtype}-{s.layout}-{s.input_quant}" for s in SPECS]


def assert_bit_identical(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    assert got.flags.c_contiguous
    assert got.tobytes() == want.tobytes(), f"{np.count_nonzero(got != want)} values differ"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_pixel_value_maps_like_the_formula(spec: ModelSpec) -> None:
    values = np.arange(256, dtype=np.uint8)
    # Each channel holds all 256 values, in a different order, so a channel mix-up would show.
    rgb = np.stack([values, values[::-1], np.roll(values, 77)], axis=-1).reshape(16, 16, 3)
    assert_bit_identical(to_tensor(rgb, spec), formula(rgb, spec))
    assert_bit_identical(reference_tensor(rgb, spec), formula(rgb, spec))
    if spec.input_dtype != "uint8":
        lut = input_lut(spec)
        assert lut.shape == (256,) and lut.dtype == np.dtype(spec.input_dtype)
        one_channel = formula(values.reshape(1, 256, 1).repeat(3, axis=2), replace(spec, layout="NHWC"))
        assert lut.tobytes() == np.ascontiguousarray(one_channel[0, 0, :, 0]).tobytes()


def test_float32_input_is_the_pixel_divided_by_255() -> None:
    lut = input_lut(spec_for("float32", "NCHW"))
    for v in range(256):
        assert lut[v] == np.float32(v) / np.float32(255.0)
    assert lut[0] == 0.0 and lut[255] == 1.0


def test_int8_values_cover_the_range_and_clip() -> None:
    coarse = input_lut(spec_for("int8", "NHWC", QuantParams(1 / 255, -128)))
    assert coarse[0] == -128 and coarse[255] == 127 and np.all(np.diff(coarse.astype(int)) == 1)
    fine = input_lut(spec_for("int8", "NHWC", QuantParams(0.001, 0)))
    assert fine[0] == 0 and fine[255] == 127  # 1.0 / 0.001 = 1000 clips


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_random_and_strided_frames(spec: ModelSpec) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert_bit_identical(to_tensor(rgb, spec), formula(rgb, spec))
    view = rng.integers(0, 256, (40, 120, 3), dtype=np.uint8)[3:38, 5:110:2]  # not contiguous
    assert_bit_identical(to_tensor(view, spec), formula(view, spec))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_bgr_frames_through_prepare(spec: ModelSpec) -> None:
    """prepare_* swap BGR -> RGB inside the conversion; the result is the formula on cvtColor's output."""
    frame = np.random.default_rng(5).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    x, _ = prepare_detection(frame, spec)
    boxed, _ = letterbox(frame, spec.imgsz)
    assert_bit_identical(x, formula(cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB), spec))
    small = cv2.resize(frame, spec.imgsz[::-1], interpolation=cv2.INTER_AREA)
    want = formula(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), spec)
    assert_bit_identical(prepare_classification(frame, spec), want)


def test_table_is_computed_once_per_input_spec() -> None:
    a = spec_for("int8", "NCHW", QuantParams(0.0173, 3))
    b = replace(a, imgsz=(320, 320), layout="NHWC")
    assert input_lut(a) is input_lut(b)
    assert input_lut(a) is not input_lut(replace(a, input_quant=QuantParams(0.0173, 4)))
    assert not input_lut(a).flags.writeable


def test_int8_without_quantisation_is_refused() -> None:
    spec = spec_for("int8", "NHWC", None)
    with pytest.raises(ValueError, match="model-int8.bin: int8 input without quantisation"):
        to_tensor(np.zeros((4, 4, 3), np.uint8), spec)


def test_real_vtest_frames_through_prepare_detection() -> None:
    # Not the session `vtest_video` fixture: tests/edge/conftest.py redefines `shared_data` per function,
    # which that session fixture cannot request.
    vtest_video = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vtest" / "vtest.avi"
    if not vtest_video.is_file():
        pytest.skip("needs ../shared/data")
    cap = cv2.VideoCapture(str(vtest_video))
    frames = []
    for _ in range(40):
        ok, frame = cap.read()
        assert ok, f"cannot read {vtest_video}"
        frames.append(frame)
    cap.release()
    for frame in frames[::13]:
        for spec in SPECS:
            for size in ((320, 320), (640, 640)):
                s = replace(spec, imgsz=size)
                x, _ = prepare_detection(frame, s)
                boxed, _ = letterbox(frame, size)  # unchanged by the LUT work: the formula's input
                assert_bit_identical(x, formula(cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB), s))
            small = cv2.resize(frame, (160, 128), interpolation=cv2.INTER_AREA)
            want = formula(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), replace(spec, imgsz=(128, 160)))
            assert_bit_identical(prepare_classification(frame, replace(spec, imgsz=(128, 160))), want)
