"""SceneParams: every knob of the scene stage, validated (unknown keys are an error, not ignored)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.strict import Strict
from trainer.relabel.teacher import TeacherParams


class SceneParams(Strict):

    # Time split: the last part of the video is never seen by the plate, the cutouts or the training frames.
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    holdout_frames: int = Field(120, ge=1, description="at most this many held-out frames (every k-th)")
    # Frame rate of a frame folder or glob (stills carry none; 25 when None), or an override of a video's
    # own rate (a wrong header). Only timestamps depend on it.
    fps: float | None = Field(None, gt=0, le=1000)
    # Background plate: one per scene segment.
    plate_frames: int = Field(80, ge=5, description="frames spread over each segment for its plate")
    # "median": the plain temporal median; "clean": each sample's moving pixels left out, pixels never seen
    # still filled in from around them and counted (a crowd that never clears; trainer/scene/plate.py).
    # median stays the default: on the thermal harbour's real labels the clean plate scored 0.241 / 0.071
    # mAP50 / mAP50-95 against the median's 0.251 / 0.076 (label-free, 4 epochs, the same commit).
    plate: Literal["clean", "median"] = "median"
    # The clean plate compares each sample with the frame this long after it for its motion mask: short,
    # so a walker has moved but a slow coat's middle has not been uncovered by chance (vtest: 2 frames).
    plate_motion_gap_s: float = Field(0.2, gt=0, le=5)
    # Scene segments (trainer/scene/segments.py): a long sequence whose empty scene changes gets one plate
    # per stretch. Found on thumbnails of the training part only.
    segments: bool = True  # False: one plate over the whole training part
    segment_samples: int = Field(300, ge=10, description="thumbnails spread over the training part; "
                                 "decoding them costs a few seconds, the comparison itself is cheap")
    # Thumbnails per side of a candidate cut: their median must forget the people walking by, so the
    # window should span a few seconds of walking (vtest at 10 fps: 300 samples, 10 a side = 2 s).
    segment_window: int = Field(10, ge=3)
    # A thumbnail pixel differs when its grey level (0..255, gain matched) moves more than this: above
    # blur-smoothed sensor and JPEG noise, below any real change of the empty scene.
    segment_pixel_threshold: float = Field(16.0, gt=0)
    # A cut needs this share of the thumbnail to differ. Steady footage scores <= 0.08 (vtest's crowds)
    # and 0.03 (CAVIAR); a light change or a new day scores 0.3-0.9. A single car moving is smaller than
    # this and stays in one plate: the finder rejects a blob that wide without HOG support anyway.
    segment_change: float = Field(0.15, gt=0, lt=1)
    # The shortest segment: its plate needs enough frames for the median to lose the people in them.
    segment_min_frames: int = Field(100, ge=10)
    # At most this many plates: each costs plate_frames decodes and a finder; the strongest cuts win.
    max_segments: int = Field(12, ge=1)
    # Perspective: a first detection pass over this many training frames, without perspective priors.
    calib_frames: int = Field(100, ge=8)
    # Training part scan (cutouts and pseudo-labelled frames): every scan_stride-th training frame.
    scan_stride: int = Field(3, ge=1, description="consecutive frames are near duplicates; take every k-th")
    train_frames: int = Field(150, ge=1, description="at most this many pseudo-labelled training frames")
    max_cutouts: int = Field(300, ge=0)
    # Hard negatives: moving non-person blobs kept for compose (trainer/scene/distractors.py); 0: none.
    max_distractors: int = Field(60, ge=0)
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
    # How people appear: "upright" (a wall or pole camera: people stand, height grows with the foot row,
    # HOG confirms them); "any" (a ceiling or fisheye camera looking down: people lie at every angle, so
    # foreground blobs of person-like size and shape at any orientation, no HOG, and a size model by
    # distance from the image centre, trainer/scene/sizemodel.py); "auto" tries upright first and falls
    # back to "any" when calibration finds too few upright people (scene.json records which was used).
    orientation: Literal["auto", "upright", "any"] = "auto"
    # "any" mode: the longest person blob accepted, long side / short side of its minimum-area rectangle
    # (a walker seen from above is ~1.5-2.5; longer is a shadow streak, a door edge, a light reflection).
    max_elongation: float = Field(4.0, ge=1.5, le=10.0)
    jpeg_quality: int = Field(92, ge=50, le=100)
    # Teacher mode (`--teacher MODEL`): how the teacher's boxes become the labels of the real frames.
    teacher: TeacherParams = Field(default_factory=lambda: TeacherParams.model_validate({}))
    # The scene's self-check (trainer/scene/evidence.py) on this many training frames spread over it.
    evidence_frames: int = Field(12, ge=1)
    # Weak evidence (ghosted plate, fragments outvoting whole people, a perspective whole-person
    # detections disagree with) stops the run; true goes on and marks it low-confidence.
    accept_weak_evidence: bool = False
