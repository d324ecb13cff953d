"""Checkpoints: one file with everything a run needs to continue exactly or to sample.

Contents: format tag, the full config, step, model / EMA / optimizer state, RNG states (torch CPU and CUDA,
NumPy, Python), the mask bank (bit-packed) and where the data came from. Only tensors and plain Python values
are stored, so loading uses torch.load(weights_only=True) and a checkpoint file cannot run code.
Writes go through a temp file + rename: a crash never leaves a half-written last.pt.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.atomic import atomic_write_bytes
from edge.errors import CctvkitError
from trainer.diffusion.defaults import PersonsConfig
from trainer.diffusion.gaussian_diffusion import GaussianDiffusion
from trainer.diffusion.masks import MaskBank
from trainer.diffusion.unet import UNet

FORMAT = "cctvkit-persons/1"
FIX = "pass a checkpoint written by `trainer persons train` (e.g. OUT/last.pt) or retrain"


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, or a one-line CctvkitError for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CctvkitError("checkpoint not found", path, FIX)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CctvkitError(f"not a readable checkpoint ({reason})", path, FIX) from None
    found = state.get("format") if isinstance(state, dict) else None
    if isinstance(found, str) and found.startswith(FORMAT.split("/")[0] + "/") and found != FORMAT:
        raise CctvkitError(f"checkpoint format {found} is not this cctvkit's {FORMAT}", path,
                           "retrain it with this version (`trainer persons train`)")
    if found != FORMAT:
        raise CctvkitError("not a person-generator checkpoint", path, FIX)
    missing = [k for k in ("config", "step", "model", "ema") if k not in state]
    if missing:
        raise CctvkitError(f"checkpoint lacks {', '.join(missing)}", path, FIX)
    return state


def config_of(state: dict[str, Any], path: str | Path = "") -> PersonsConfig:
    try:
        return PersonsConfig.model_validate(state["config"])
    except Exception:
        raise CctvkitError("checkpoint config does not match this version of cctvkit", path, FIX) from None


def load_generator(path: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
                   ) -> tuple[UNet, GaussianDiffusion, PersonsConfig, MaskBank | None, dict[str, Any]]:
    """(model in eval mode on `device`, diffusion, config, mask bank or None, the raw checkpoint)."""
    state = load_checkpoint(path)
    cfg = config_of(state, path)
    model = UNet(cfg.model)
    try:
        model.load_state_dict(state["ema" if use_ema else "model"])
    except RuntimeError:
        raise CctvkitError("checkpoint weights do not fit its own config", path, FIX) from None
    model.to(device).eval().requires_grad_(False)
    bank = MaskBank.from_state(state["mask_bank"]) if state.get("mask_bank") else None
    return model, GaussianDiffusion(cfg.diffusion), cfg, bank, state
