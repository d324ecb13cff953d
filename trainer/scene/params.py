"""SceneParams: every knob of the scene stage, validated (unknown keys are an error, not ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SceneParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Time split: the last part of the video is never seen by the plate, the cutouts or the training frames.
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    holdout_frames: int = Field(120, ge=1, description="at most this many held-out frames (every k-th)")
    # Background plate.
    plate_frames: int = Field(80, ge=5, description="frames spread over the training part for the median")
    # Perspective: a first detection pass over this many training frames, without perspective priors.
    calib_frames: int = Field(100, ge=8)
    # Training part scan (cutouts and pseudo-labelled frames): every scan_stride-th training frame.
    scan_stride: int = Field(3, ge=1, description="consecutive frames are near duplicates; take every k-th")
    train_frames: int = Field(150, ge=1, description="at most this many pseudo-labelled training frames")
    max_cutouts: int = Field(300, ge=0)
    min_cutout_px: int = Field(40, ge=8, description="shorter people are not cut out (lowered to 3/4 of the "
                               "typical person height when everyone is smaller)")
    # Foreground: |frame - plate| in Lab after a global gain correction, per-pixel thresholds.
    fg_luma_threshold: float = Field(14.0, gt=0, description="min |dL| (0..255 Lab L) to call a pixel moving")
    fg_chroma_threshold: float = Field(9.0, gt=0, description="min |d(a,b)| to call a pixel moving")
    fg_noise_k: float = Field(3.0, ge=0, description="threshold >= k * the pixel's background MAD")
    shadow_ratio: tuple[float, float] = (0.55, 0.92)  # darker by this factor, same colour -> shadow
    shadow_chroma: float = Field(6.0, ge=0)
    min_person_px: int = Field(24, ge=8, description="smallest person height searched for, in pixels")
    # OpenCV HOG people detector, run on foreground regions rescaled so a person is ~96 px tall.
    hog: bool = True
    hog_hit_threshold: float = 0.0
    hog_scale: float = Field(1.05, gt=1.0, lt=2.0)
    hog_win_stride: int = Field(8, ge=4, le=16)
    jpeg_quality: int = Field(92, ge=50, le=100)
