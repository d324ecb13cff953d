"""The shape a run manifest must have, checked whole when it is loaded.

A manifest may be hand-edited, truncated by a copy or written by another tool; the readers index into it
freely (`data["stages"][name]["outputs"][key]["path"]`). Checking every key they rely on at load turns what
would be an AttributeError deep in a stage into one line naming the key and the stage to re-run.
Keys a reader treats as optional stay optional; keys this module does not know are left alone (an
experiment arm adds its own).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import CctvkitError
from edge.types import ModelSpec, SpecError, kind_of

# The stages a user re-runs by `trainer <stage> --run RUN`; others (import, generator, persons) have their
# own commands, so their fix is worded generally.
_RERUN = ("scene", "compose", "train", "export", "bench")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str, fix: str) -> CctvkitError:
        return CctvkitError(f"manifest key '{key}' {problem}", self.path, fix)

    def need(self, parent: dict[str, Any], name: str, key: str, ok: Callable[[Any], bool], wanted: str,
             fix: str, required: bool = True) -> Any:
        """parent[name], checked; `key` is its dotted name for the message."""
        if name not in parent:
            if required:
                raise self.fail(key, "is missing", fix)
            return None
        value = parent[name]
        if not ok(value):
            raise self.fail(key, f"must be {wanted}, not {kind_of(value)}", fix)
        return value


def _rerun(stage: str, run_dir: Path) -> str:
    if stage in _RERUN:
        return f"re-run `trainer {stage} --run {run_dir}`"
    return "re-run the command that made this stage, or make the run again"


def _files(c: _Checker, entry: dict[str, Any], name: str, key: str, fix: str, required: bool) -> None:
    """A stage's outputs or inputs: {key: {"path": str, "sha256": str, "files"?: int}}."""
    files = c.need(entry, name, key, lambda v: isinstance(v, dict), "an object of files", fix, required)
    for fkey, f in (files or {}).items():
        where = f"{key}.{fkey}"
        c.need(files, fkey, where, lambda v: isinstance(v, dict), "an object with path and sha256", fix)
        c.need(f, "path", f"{where}.path", lambda v: isinstance(v, str) and v != "", "a relative path", fix)
        c.need(f, "sha256", f"{where}.sha256", lambda v: isinstance(v, str), "a sha256 string", fix)
        c.need(f, "files", f"{where}.files", lambda v: isinstance(v, int) and not isinstance(v, bool),
               "a file count", fix, required=False)


def check_shape(data: dict[str, Any], path: Path) -> None:
    """Raise CctvkitError naming the first key of `data` (a manifest with the right schema and version)
    that is missing or of the wrong type; `path` is the manifest file."""
    c = _Checker(path)
    run_dir = path.parent
    remake = "re-create the run (`trainer demo --name NEW`, or `trainer scene --run NEW`)"
    stages = c.need(data, "stages", "stages", lambda v: isinstance(v, dict), "an object of stage entries", remake)
    models = c.need(data, "models", "models", lambda v: isinstance(v, dict), "an object of model entries", remake)
    c.need(data, "complete", "complete", lambda v: isinstance(v, bool), "true or false", remake, required=False)
    for stage, entry in stages.items():
        key, fix = f"stages.{stage}", _rerun(stage, run_dir)
        c.need(stages, stage, key, lambda v: isinstance(v, dict), "an object (outputs, inputs, ...)", fix)
        _files(c, entry, "outputs", f"{key}.outputs", fix, required=True)
        _files(c, entry, "inputs", f"{key}.inputs", fix, required=False)
        for name in ("params", "summary"):
            c.need(entry, name, f"{key}.{name}", lambda v: isinstance(v, dict), "an object", fix, required=False)
        c.need(entry, "seconds", f"{key}.seconds", _number, "a number", fix, required=False)
    fix = _rerun("export", run_dir)
    for name, model in models.items():
        key = f"models.{name}"
        c.need(models, name, key, lambda v: isinstance(v, dict), "an object (a ModelSpec)", fix)
        c.need(model, "sha256", f"{key}.sha256", lambda v: isinstance(v, str) and v != "", "a sha256 string", fix)
        c.need(model, "extra_sha256", f"{key}.extra_sha256",
               lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
               "an object of file name: sha256", fix, required=False)
        try:
            ModelSpec.from_json({k: v for k, v in model.items() if k != "extra_sha256"})
        except SpecError as e:
            raise c.fail(f"{key}.{e.key}" if e.key else key, str(e).removeprefix(f"key '{e.key}' "), fix) from None
