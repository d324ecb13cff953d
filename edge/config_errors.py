"""Turn a pydantic ValidationError into one line that names the YAML key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from edge.errors import CctvkitError


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the (sub)model that holds the offending key, for the hint."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def describe_validation_error(err: ValidationError, model: type[BaseModel], source: str | Path) -> CctvkitError:
    first = err.errors()[0]
    loc = tuple(first.get("loc", ()))
    key = ".".join(str(p) for p in loc) or "<top level>"
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc)
        fix = f"remove it or use one of: {', '.join(valid)}" if valid else "remove it"
        return CctvkitError(f"unknown key '{key}'", source, fix)
    if kind == "missing":
        return CctvkitError(f"missing key '{key}'", source, "add it")
    value = first.get("input")
    if "password" in str(loc[-1] if loc else ""):
        value = "<not shown>"  # someone may have pasted the password itself: keep it out of the journal
    more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
    return CctvkitError(f"key '{key}' = {value!r}: {first.get('msg', 'invalid')}{more}", source, "fix that value")


def read_yaml_mapping(path: str | Path, example: str = "see the example config in README.md") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; a missing file, bad syntax or another top level is a
    one-line CctvkitError naming the file (`example` is the fix offered for a wrong top level)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise CctvkitError("config file not found", path, "pass an existing YAML file") from None
    except (OSError, yaml.YAMLError) as e:
        raise CctvkitError(f"not readable YAML ({str(e).splitlines()[0]})", path, "fix the YAML syntax") from e
    if not isinstance(doc, dict):
        raise CctvkitError("top level must be a mapping of keys", path, example)
    return doc


def load_yaml_config(path: str | Path, model: type[BaseModel]) -> Any:
    path = Path(path)
    doc = read_yaml_mapping(path)
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise describe_validation_error(e, model, path) from None
