"""`${NAME}` in edge.yaml's string values, taken from the environment (as Frigate does for camera secrets).

A camera password then lives in /etc/cctvkit/edge.env (root-only, read by the systemd unit's
EnvironmentFile=) instead of in edge.yaml, which is copied around, diffed and pasted into bug reports.

Only the exact form `${NAME}` (NAME: letters, digits, underscores, not starting with a digit) is expanded,
so a bcrypt hash (`$2b$12$...`), a bare `$HOME` or a `$` in a password pass untouched; `$${` is a literal
`${`. A `${` that is not a valid reference is an error rather than text passed on: it is almost always a
typo (`${CAM PASS}`, a missing `}`), and passing it on would send the camera a wrong password in silence.
One pass only: a value that itself contains `${...}` is not expanded again.

The substituted string remembers what was written: its repr() is the text with `${NAME}` still in it, so
a config error that echoes the value (edge/config_errors.py uses !r) shows the reference, not the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.errors import CctvkitError

ENV_FILE = "/etc/cctvkit/edge.env"
# `$${` (escape), `${NAME}` (a reference) or any other `${` (an error), left to right.
_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


class Expanded(str):
    """A config string that had `${...}` in it: the value is the expanded text, repr() the written one."""

    template: str

    def __new__(cls, value: str, template: str) -> Expanded:
        obj = super().__new__(cls, value)
        obj.template = template
        return obj

    def __repr__(self) -> str:
        return repr(self.template)


def expand_string(text: str, env: Mapping[str, str], key: str, origin: str | Path,
                  env_file: str | Path | None = None) -> str:
    """`text` with every `${NAME}` replaced by env[NAME] and `$${` by `${`; `key` and `origin` (the file)
    only name the place in an error, `env_file` the file the variable should be set in (None: the
    systemd unit's ENV_FILE)."""
    if "${" not in text:
        return text

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        if name is None:
            raise CctvkitError(
                f"key '{key}': '${{' starts no valid variable reference", origin,
                "write ${NAME} (letters, digits, _) to take NAME from the environment, or $${ for a literal ${")
        if name not in env:
            where = (f"add {name}=... to {env_file}" if env_file is not None else
                     f"set it (for the systemd service: {name}=... in {ENV_FILE}, read by EnvironmentFile=)")
            raise CctvkitError(
                f"key '{key}' uses ${{{name}}} but the environment variable {name} is not set", origin,
                f"{where}{',' if env_file is not None else ''} or write $${{ for a literal ${{")
        return env[name]

    return Expanded(_TOKEN.sub(replace, text), text)


def expand_env(doc: Any, origin: str | Path, env: Mapping[str, str] | None = None, key: str = "",
               env_file: str | Path | None = None) -> Any:
    """A copy of the parsed YAML `doc` with `${NAME}` expanded in every string value (mapping keys are
    left alone: a secret has no business being a key). CctvkitError naming the YAML key on a missing
    variable or a malformed reference (naming `env_file` as the place to set it, when given)."""
    env = os.environ if env is None else env
    if isinstance(doc, str):
        return expand_string(doc, env, key or "<top level>", origin, env_file)
    if isinstance(doc, dict):
        return {k: expand_env(v, origin, env, f"{key}.{k}" if key else str(k), env_file) for k, v in doc.items()}
    if isinstance(doc, list):
        return [expand_env(v, origin, env, f"{key}.{i}" if key else str(i), env_file) for i, v in enumerate(doc)]
    return doc


__all__ = ["ENV_FILE", "Expanded", "expand_env", "expand_string"]
