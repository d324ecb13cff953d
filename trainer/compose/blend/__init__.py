"""Blend plug-ins, one per file, registered by name in BLENDS (see base.py for the contract)."""

from __future__ import annotations

from edge.errors import CctvkitError
from trainer.compose.blend import feather, hard, poisson
from trainer.compose.blend.base import BlendFn

BLENDS: dict[str, BlendFn] = {
    "feather": feather.blend,
    "poisson": poisson.blend,
    "poisson_mixed": poisson.blend_mixed,
    "hard": hard.blend,
}


def get_blend(name: str) -> BlendFn:
    try:
        return BLENDS[name]
    except KeyError:
        raise CctvkitError(
            f"unknown blend mode {name!r}; valid: {', '.join(sorted(BLENDS))}",
            None,
            "set compose.blend to one of them",
        ) from None
