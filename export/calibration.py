"""Calibration images for static INT8 quantisation, fed exactly as the device feeds frames.

The reader pushes every image through edge.detect.preprocess (letterbox for detectors, whole-frame
squash for classifiers) with the FP32 model's spec, so the activation ranges ONNX Runtime measures are
the ranges the device will see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edge.detect.preprocess import prepare_classification, prepare_detection
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from edge.types import ModelSpec

MIN_IMAGES = 32  # below this the activation ranges are noise
DEFAULT_IMAGES = 300  # more changes MinMax ranges little and only costs time

log = logging.getLogger(__name__)


def select_calibration_images(
    source: Path | str | Sequence[Path | str], n: int = DEFAULT_IMAGES, seed: int = 0
) -> list[Path]:
    """Up to n images from a folder (searched recursively) or a list, spread evenly over the sorted list.

    Frames of a video sorted by name are consecutive, so an even spread covers the whole time span
    (lighting, people) where a random pick could cluster; `seed` only shifts the start within one step.
    Fewer than 32 images is a CctvkitError; fewer than n a warning.
    """
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise CctvkitError("calibration image folder not found", folder, "pass a folder of frames")
        images = list_images(folder)
        where: str | Path = folder
    else:
        images = sorted(Path(p) for p in source)
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise CctvkitError("calibration image not found", missing[0], "pass existing image files")
        where = images[0].parent if images else "<calibration list>"
    if len(images) < MIN_IMAGES:
        raise CctvkitError(
            f"only {len(images)} calibration images", where, f"add at least {MIN_IMAGES} images"
        )
    if len(images) < n:
        log.warning(
            "%s: %d calibration images, fewer than the %d asked for; INT8 ranges may be less reliable",
            where,
            len(images),
            n,
        )
        return images
    step = len(images) / n
    offset = np.random.default_rng(seed).uniform(0, step)
    idx = np.minimum((offset + step * np.arange(n)).astype(np.int64), len(images) - 1)
    return [images[i] for i in idx]


class ImageCalibrationReader(CalibrationDataReader):
    """onnxruntime.quantization CalibrationDataReader over image files.

    `spec` is the FP32 model's spec (float32 input); `on_image` is called after each image (progress).
    """

    def __init__(
        self,
        images: Sequence[Path],
        spec: ModelSpec,
        input_name: str = "images",
        on_image: Callable[[], None] | None = None,
    ):
        if spec.input_dtype != "float32":
            raise ValueError(f"calibrate with the fp32 spec, got input_dtype {spec.input_dtype}")
        self.images = [Path(p) for p in images]
        self.spec = spec
        self.input_name = input_name
        self.on_image = on_image
        self._i, self._end = 0, len(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def tensor(self, path: Path) -> np.ndarray:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise CctvkitError("cannot read calibration image", path, "delete or replace the file")
        if self.spec.task == "detect":
            return prepare_detection(frame, self.spec)[0]
        return prepare_classification(frame, self.spec)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._end:
            return None
        x = self.tensor(self.images[self._i])
        self._i += 1
        if self.on_image is not None:
            self.on_image()
        return {self.input_name: x}

    def rewind(self) -> None:
        self._i, self._end = 0, len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve images[start:end] next (ONNX Runtime's chunked calibration, see CalibStridedMinMax)."""
        self._i, self._end = start_index, min(end_index, len(self.images))
