"""The one base of every parameter and config model (edge, trainer, export, bench): an unknown key is an
error that edge/config_errors.py turns into one line naming it, so a typo never silently falls back to a
default. It lives here, in the lowest layer, because the edge config needs it too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
