"""Every knob of the person generator in one pydantic tree, with three presets.

tiny   CPU, tests and smoke runs: 32x80 crops, a ~0.3 M-parameter U-Net, minutes.
base   one GPU: 96x256 crops (the 1:2.5 person aspect), sized for >= 200 cutouts/s with DDIM 25 on an H100.
large  several GPUs: 192x512 crops, wider U-Net, attention at the two lowest resolutions.

A YAML file given with --config overrides any key of the preset it names (`preset: base` plus keys); unknown
keys are refused (extra="forbid") so a typo never silently falls back to a default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from edge.errors import CctvkitError
from edge.strict import Strict


class DataParams(Strict):
    width: int = Field(32, ge=16)
    height: int = Field(80, ge=16)
    margin: float = Field(0.06, ge=0.0, le=0.5)  # context kept around the person's box, fraction of its height
    holdout_every: int = Field(10, ge=0)  # every n-th pair (sorted by name) is held out for scoring; 0 = none
    hflip: bool = True


class ModelParams(Strict):
    channels: int = Field(16, ge=8)
    channel_mult: list[int] = [1, 2, 2]
    num_res_blocks: int = Field(1, ge=1)
    attn_levels: list[int] = [2]  # indices into channel_mult; the last ones are the lowest resolutions
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    groups: int = Field(8, ge=1)


class DiffusionParams(Strict):
    timesteps: int = Field(1000, ge=10)
    schedule: Literal["linear", "cosine"] = "cosine"
    l1_weight: float = Field(0.5, ge=0.0)  # loss = weighted MSE + l1_weight * weighted L1 on the noise
    person_weight: float = Field(1.0, ge=0.0)  # extra weight on mask pixels (background has weight 1)
    head_weight: float = Field(1.0, ge=0.0)  # extra weight on the top `head_fraction` of the silhouette
    head_fraction: float = Field(0.3, gt=0.0, le=1.0)


class GeneratorTrainParams(Strict):
    """How the person generator trains: optimiser steps (not epochs), EMA, checkpoints and sample grids.
    (trainer/config.py TrainParams is the YOLO detector and classifier's.)"""

    steps: int = Field(2000, ge=1)
    batch: int = Field(16, ge=1)  # global batch; each DDP rank takes batch / world_size
    lr: float = Field(2e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, gt=0.0)
    ema_decay: float = Field(0.9995, ge=0.0, lt=1.0)
    ema_start: int = Field(0, ge=0)  # copy the weights (no averaging) before this step
    seed: int = 0
    log_every: int = Field(10, ge=1)
    ckpt_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=0)  # 0 = no periodic sample grids
    sample_n: int = Field(16, ge=1)
    sample_steps: int = Field(25, ge=1)
    bf16: bool = True  # autocast on CUDA only; CPU always runs fp32
    channels_last: bool = True  # CUDA only
    mask_bank_max: int = Field(5000, ge=1)  # training masks stored in the checkpoint for sampling


class SampleParams(Strict):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(25, ge=1)
    eta: float = Field(0.0, ge=0.0)
    feather: float = Field(0.8, ge=0.0)  # Gaussian sigma (px at the crop size) of the alpha edge
    batch: int = Field(64, ge=1)


class PersonsConfig(Strict):
    preset: Literal["tiny", "base", "large"] = "tiny"
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    diffusion: DiffusionParams = DiffusionParams()
    train: GeneratorTrainParams = GeneratorTrainParams()
    sample: SampleParams = SampleParams()

    @model_validator(mode="after")
    def _check(self) -> PersonsConfig:
        levels = len(self.model.channel_mult)
        step = 2 ** (levels - 1)
        if self.data.width % step or self.data.height % step:
            raise ValueError(f"data.width and data.height must be multiples of {step} "
                             f"(the U-Net halves them {levels - 1} times)")
        bad = [a for a in self.model.attn_levels if not 0 <= a < levels]
        if bad:
            raise ValueError(f"model.attn_levels {bad} outside 0..{levels - 1}")
        for mult in self.model.channel_mult:
            if (self.model.channels * mult) % self.model.heads:
                raise ValueError("model.channels * every channel_mult must be divisible by model.heads")
        return self


_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "data": {"width": 32, "height": 80},
        "model": {"channels": 16, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "attn_levels": [2],
                  "heads": 4, "groups": 8},
        "train": {"steps": 600, "batch": 16, "lr": 1e-3, "warmup": 20, "ema_decay": 0.995, "ema_start": 50,
                  "log_every": 10, "ckpt_every": 200, "sample_every": 200, "sample_n": 16, "sample_steps": 10},
        "sample": {"steps": 25, "batch": 64},
    },
    "base": {
        "data": {"width": 96, "height": 256},
        # 12.5 M parameters, 50 GFLOP per forward at 96x256 (torch FlopCounterMode): 200 cutouts/s with DDIM 25
        # needs ~250 TFLOP/s, about a quarter of an H100's dense bf16 peak (not yet measured on a GPU).
        "model": {"channels": 48, "channel_mult": [1, 2, 3, 4], "num_res_blocks": 2, "attn_levels": [3],
                  "heads": 4, "groups": 16, "dropout": 0.1},
        "train": {"steps": 200_000, "batch": 64, "lr": 2e-4, "warmup": 1000, "ema_decay": 0.9995,
                  "ema_start": 2000, "log_every": 50, "ckpt_every": 5000, "sample_every": 5000},
    },
    "large": {
        "data": {"width": 192, "height": 512},
        "model": {"channels": 128, "channel_mult": [1, 1, 2, 3, 4], "num_res_blocks": 2, "attn_levels": [3, 4],
                  "heads": 8, "groups": 32, "dropout": 0.1},
        "train": {"steps": 400_000, "batch": 128, "lr": 1e-4, "warmup": 2000, "ema_decay": 0.9999,
                  "ema_start": 5000, "log_every": 100, "ckpt_every": 10_000, "sample_every": 10_000},
    },
}
PRESETS = tuple(_PRESETS)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_dict(name: str) -> dict[str, Any]:
    if name not in _PRESETS:
        raise CctvkitError(f"unknown preset '{name}'", fix=f"choose one of: {', '.join(_PRESETS)}")
    return {"preset": name, **_PRESETS[name]}


def make_config(preset: str = "tiny", overrides: dict[str, Any] | None = None,
                source: str = "<overrides>") -> PersonsConfig:
    """The preset with `overrides` (nested dict, e.g. {"train": {"steps": 50}}) applied and validated."""
    from pydantic import ValidationError

    from edge.config_errors import describe_validation_error

    overrides = dict(overrides or {})
    preset = overrides.pop("preset", preset)
    try:
        return PersonsConfig.model_validate(_merge(preset_dict(preset), overrides))
    except ValidationError as e:
        raise describe_validation_error(e, PersonsConfig, source) from None


def load_config(path: str | None, preset: str = "tiny", overrides: dict[str, Any] | None = None) -> PersonsConfig:
    """A YAML file (optional) over a preset, then command-line overrides over both."""
    doc: dict[str, Any] = {}
    if path:
        from edge.config_errors import read_yaml_mapping

        doc = read_yaml_mapping(path, "e.g. `preset: base` and `train: {...}`")
    merged = _merge(doc, overrides or {})
    return make_config(merged.pop("preset", preset), merged, source=str(path or "<command line>"))
