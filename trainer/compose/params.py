"""ComposeParams: every knob of the compose stage, validated (unknown keys are an error, not ignored)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.strict import Strict


def _ordered(name: str, pair: tuple[float, float]) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be (low, high), got {pair}")


PersonSource = Literal["real", "generated"]
PERSON_SOURCES: tuple[PersonSource, ...] = ("real", "generated")


class JitterParams(Strict):
    """Whole-image photometric jitter, so the detector sees the camera's day-to-day variation, not one plate.

    The plate is a temporal median and therefore noise-free; real frames are not, so some sensor noise is
    always added (noise_sigma low > 0), otherwise the model could tell composites from real frames by grain.
    """

    brightness: float = Field(0.08, ge=0, le=0.5, description="max |offset| as a fraction of 255")
    contrast: float = Field(0.15, ge=0, le=0.8, description="max relative gain change around mid-grey")
    gamma: float = Field(0.12, ge=0, le=0.8, description="max |log-gamma| change")
    white_balance: float = Field(0.04, ge=0, le=0.3, description="max per-channel gain change")
    noise_sigma: tuple[float, float] = (1.0, 4.0)  # Gaussian sensor noise, 0..255 units
    blur_prob: float = Field(0.3, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.4, 1.0)
    jpeg_quality: tuple[int, int] = (70, 95)  # camera compression varies too

    @model_validator(mode="after")
    def _check(self) -> JitterParams:
        _ordered("noise_sigma", self.noise_sigma)
        _ordered("blur_sigma", self.blur_sigma)
        _ordered("jpeg_quality", self.jpeg_quality)
        if self.noise_sigma[0] < 0 or self.blur_sigma[0] < 0:
            raise ValueError("noise_sigma and blur_sigma must be >= 0")
        if not (self.jpeg_quality[0] >= 1 and self.jpeg_quality[1] <= 100):
            raise ValueError("jpeg_quality must lie in 1..100")
        return self

    @classmethod
    def off(cls) -> JitterParams:
        """No jitter at all (tests that compare pixels with the plate)."""
        return cls(
            brightness=0,
            contrast=0,
            gamma=0,
            white_balance=0,
            noise_sigma=(0, 0),
            blur_prob=0,
            jpeg_quality=(100, 100),
        )


class ComposeParams(Strict):
    n_images: int = Field(400, ge=2, description="detection images, train + val")
    val_fraction: float = Field(0.2, gt=0, lt=0.9)
    negative_fraction: float = Field(0.15, ge=0, lt=1, description="empty plates with jitter")
    real_fraction: float = Field(0.2, ge=0, lt=1, description="real pseudo-labelled frames from scene/frames")
    distractor_prob: float = Field(0.3, ge=0, le=1, description="share of composed and empty images that get "
                                   "one of the scene's non-person motions (hard negatives, no label)")
    persons_per_image: tuple[int, int] = (1, 8)
    scale_jitter: tuple[float, float] = (0.9, 1.1)  # times the perspective height
    blend: str = "feather"  # a name in trainer.compose.blend.BLENDS
    seed: int = 0
    workers: int = Field(0, ge=0, le=64, description="processes making the images; 0: one per core (at most 8). "
                         "The images are the same for any number")
    cls_size: int = Field(160, ge=16, le=1024, description="square size of the classifier images")
    min_visible_fraction: float = Field(0.4, ge=0, le=1, description="less visible persons are not pasted")
    min_box_px: int = Field(4, ge=1, description="a visible box smaller than this on either side is dropped")
    min_person_px: float = Field(
        10.0, ge=2, description="rows where the perspective height is smaller are skipped"
    )
    iou_limit: float = Field(0.3, ge=0, le=1, description="max IoU between two placed persons' boxes")
    max_upscale: float = Field(
        1.5, ge=1, description="a cutout is enlarged at most this much when another fits"
    )
    flip_prob: float = Field(0.5, ge=0, le=1)
    harmonize_strength: float = Field(0.5, ge=0, le=1, description="0 pastes cutouts with their own colours")
    shadow_strength: float = Field(
        0.25, ge=0, le=1, description="contact shadow darkening at the feet; 0 = none"
    )
    time_blocks: int = Field(
        10, ge=2, description="the video timeline is cut into this many blocks for the split"
    )
    jitter: JitterParams = Field(default_factory=lambda: JitterParams.model_validate({}))
    # Where pasted persons come from: the scene's own cutouts ("real") and the persons stage's generated
    # ones ("generated"), drawn per person in these shares (normalised). {real: 1.0} composes as before.
    persons: dict[PersonSource, float] = Field(default_factory=lambda: dict.fromkeys(PERSON_SOURCES[:1], 1.0))
    # merged: every person is class 0. split: generated persons are class 1 (person_synthetic), for
    # analysing what the detector learns from each; a model trained so still decodes both as person.
    label_classes: Literal["merged", "split"] = "merged"

    @field_validator("persons")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if any(s < 0 for s in v.values()) or sum(v.values()) <= 0:
            raise ValueError(f"persons shares must be >= 0 with a sum > 0 (e.g. {{real: 0.5, generated: 0.5}}), "
                             f"got {v}")
        return v

    def person_shares(self) -> dict[PersonSource, float]:
        """The non-zero shares of the person sources, normalised to sum 1, in a fixed order."""
        total = sum(self.persons.values())
        return {s: self.persons[s] / total for s in PERSON_SOURCES if self.persons.get(s, 0) > 0}

    @model_validator(mode="after")
    def _check(self) -> ComposeParams:
        lo, hi = self.persons_per_image
        if lo < 1 or hi < lo:
            raise ValueError(
                f"persons_per_image must be (low >= 1, high >= low), got {self.persons_per_image}"
            )
        _ordered("scale_jitter", self.scale_jitter)
        if self.scale_jitter[0] <= 0:
            raise ValueError("scale_jitter must be > 0")
        if self.negative_fraction + self.real_fraction >= 1:
            raise ValueError("negative_fraction + real_fraction must leave room for composed images (< 1)")
        return self
