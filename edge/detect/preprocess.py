"""Frame -> model input. The one implementation used on the device, in calibration and in training data
checks, so an INT8 model is calibrated on exactly what it will see."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.types import ModelSpec

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


def to_tensor(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """HWC uint8 RGB -> a batch of one in the model's layout, dtype and quantisation."""
    if spec.input_dtype == "uint8":
        x = rgb
    else:
        x = rgb.astype(np.float32) / np.float32(255.0)  # divide, as Ultralytics does: bit-identical input
        if spec.input_dtype == "int8":
            q = spec.input_quant
            if q is None:
                raise ValueError(f"{spec.path}: int8 input without quantisation parameters")
            x = np.clip(np.round(x / q.scale + q.zero_point), -128, 127).astype(np.int8)
        elif spec.input_dtype == "float16":
            x = x.astype(np.float16)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def prepare_detection(frame_bgr: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, Letterbox]:
    boxed, lb = letterbox(frame_bgr, spec.imgsz)
    rgb = cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB)
    return to_tensor(rgb, spec), lb


def prepare_classification(frame_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Classifiers see the whole frame squashed to imgsz: presence anywhere in the frame counts,
    so nothing may be cropped away (the training images are squashed the same way)."""
    h, w = spec.imgsz
    small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
    return to_tensor(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), spec)
