"""Frame -> model input. The one implementation used on the device, in calibration and in training data
checks, so an INT8 model is calibrated on exactly what it will see."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edge.types import ModelSpec, QuantParams

PAD_VALUE = 114  # Ultralytics' letterbox grey; the models are trained with it


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: input = frame * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: int
    pad_y: int
    frame_h: int
    frame_w: int


def letterbox(frame: np.ndarray, imgsz: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to imgsz (h, w), centred, as Ultralytics does."""
    h, w = frame.shape[:2]
    th, tw = imgsz
    r = min(th / h, tw / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    bottom, right = th - nh - top, tw - nw - left
    out = cv2.copyMakeBorder(frame, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return out, Letterbox(r, left, top, h, w)


def unletterbox(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Input-pixel boxes back to frame pixels, clipped to the frame."""
    out = xyxy.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad_x) / lb.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad_y) / lb.scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, lb.frame_w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, lb.frame_h)
    return out


def _convert(x: np.ndarray, input_dtype: str, quant: QuantParams | None, path: str) -> np.ndarray:
    """uint8 pixel values -> model input values, element by element (same shape)."""
    if input_dtype == "uint8":
        return x
    y = x.astype(np.float32) / np.float32(255.0)  # divide, as Ultralytics does: bit-identical input
    if input_dtype == "int8":
        if quant is None:
            raise ValueError(f"{path}: int8 input without quantisation parameters")
        return np.clip(np.round(y / quant.scale + quant.zero_point), -128, 127).astype(np.int8)
    if input_dtype == "float16":
        return y.astype(np.float16)
    return y


def reference_tensor(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The definition of the model input, written out step by step; to_tensor equals it bit for bit.
    Kept as the executable spec for the tests; input_lut evaluates the same _convert."""
    x = _convert(rgb, spec.input_dtype, spec.input_quant, spec.path)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


@lru_cache(maxsize=16)
def _lut(input_dtype: str, quant: QuantParams | None, path: str) -> np.ndarray:
    lut = _convert(np.arange(256, dtype=np.uint8), input_dtype, quant, path)
    lut.flags.writeable = False  # one table shared by every frame of every model with this input
    return lut


def input_lut(spec: ModelSpec) -> np.ndarray:
    """uint8 pixel value -> model input value (256 entries of the model's input dtype). Computed once per
    (dtype, quantisation) by running the reference conversion on all 256 pixel values, so the table cannot
    drift from the formula; each input value depends only on its own pixel, so a lookup is exact."""
    return _lut(spec.input_dtype, spec.input_quant, spec.path)


def to_tensor(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """HWC uint8 RGB -> a batch of one in the model's layout, dtype and quantisation (= reference_tensor)."""
    return _tensor(rgb, spec, bgr=False)


def _tensor(img: np.ndarray, spec: ModelSpec, bgr: bool) -> np.ndarray:
    """reference_tensor(RGB of img), bit for bit, with fewer passes over the pixels (this runs on every
    frame on the Pi). NCHW: cv2.split makes the three planes (the channel swap of a BGR frame is free: the
    planes are just taken in reverse order) and each is converted once into its place in the output;
    float32 is the same uint8 -> float32 cast and float32 division by 255 as the reference. int8 and
    float16: every pixel goes through input_lut, the reference formula evaluated once on all 256 values."""
    h, w = img.shape[:2]
    dtype = spec.input_dtype
    if spec.layout == "NHWC":
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else img
        if dtype in ("uint8", "float32"):
            return reference_tensor(rgb, spec)  # already one vectorised pass, no transpose
        return cv2.LUT(np.ascontiguousarray(rgb).reshape(h, w * 3), input_lut(spec)).reshape(1, h, w, 3)
    planes = cv2.split(np.ascontiguousarray(img))
    if bgr:
        planes = planes[::-1]
    if dtype in ("uint8", "float32"):
        out = np.empty((1, 3, h, w), np.dtype(dtype))
        for i, plane in enumerate(planes):
            out[0, i] = plane
        if dtype == "float32":
            out /= np.float32(255.0)  # divide, as Ultralytics does: bit-identical input
        return out
    lut = input_lut(spec)
    out = np.empty((1, 3, h, w), lut.dtype)
    for i, plane in enumerate(planes):
        out[0, i] = cv2.LUT(plane, lut)
    return out


def prepare_detection(frame_bgr: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, Letterbox]:
    boxed, lb = letterbox(frame_bgr, spec.imgsz)
    return _tensor(boxed, spec, bgr=True), lb


def squash(frame: np.ndarray, imgsz: tuple[int, int]) -> np.ndarray:
    """The whole frame resized to imgsz (h, w), aspect ratio not kept: a classifier's input. Presence
    anywhere in the frame counts, so nothing may be cropped away. The one implementation: the compose and
    import stages write their classifier training images with it, so training sees what the device sees."""
    h, w = imgsz
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def prepare_classification(frame_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    return _tensor(squash(frame_bgr, spec.imgsz), spec, bgr=True)
