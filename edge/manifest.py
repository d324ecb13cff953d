"""The run manifest: the one hand-over between stages and to the device.

`runs/<name>/manifest.json` records, per stage, its parameters, inputs and outputs (path relative to the
run directory + sha256, directories as a tree hash) and timings, plus the exported models with their
ModelSpec. Readers resolve paths through it and refuse files whose sha256 does not match.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_text, sha256_file
from edge.errors import CctvkitError
from edge.types import ModelSpec

SCHEMA = "cctvkit.manifest"
VERSION = 1
FILENAME = "manifest.json"


def sha256_tree(root: str | Path) -> str:
    """Hash of a directory: sorted relative paths and their file hashes."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def hash_path(path: Path) -> str:
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


class Manifest:
    def __init__(self, run_dir: Path, data: dict[str, Any]):
        # Absolute, so entries stay right whatever the cwd and a relative --runs-dir never doubles up.
        self.run_dir = Path(run_dir).resolve()
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / FILENAME

    @classmethod
    def create(cls, run_dir: str | Path, name: str) -> Manifest:
        data = {
            "schema": SCHEMA,
            "version": VERSION,
            "run": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "complete": False,
            "stages": {},
            "models": {},
        }
        return cls(Path(run_dir), data)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Load from a manifest file or a run directory."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise CctvkitError("no run manifest here", path, "pass a run directory made by `trainer demo`")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CctvkitError(
                f"manifest is not valid JSON ({e})", path, "re-run the stage that wrote it"
            ) from e
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise CctvkitError("not a cctvkit manifest", path, "pass runs/<name>/manifest.json")
        version = data.get("version")
        if version != VERSION:
            raise CctvkitError(
                f"manifest version {version} is not the supported version {VERSION}",
                path,
                "re-create the run with this cctvkit (`trainer demo --name NEW`)",
            )
        return cls(path.parent, data)

    def save(self) -> Path:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
        return self.path

    # --- stages -----------------------------------------------------------------------------------
    def _entry(self, path: Path) -> dict[str, Any]:
        full = Path(path).resolve()
        rel = full.relative_to(self.run_dir)
        entry: dict[str, Any] = {"path": rel.as_posix(), "sha256": hash_path(full)}
        if full.is_dir():
            entry["files"] = sum(1 for q in full.rglob("*") if q.is_file())
        return entry

    def record_stage(
        self,
        stage: str,
        *,
        params: dict[str, Any],
        outputs: dict[str, Path],
        inputs: dict[str, Path] | None = None,
        external_inputs: dict[str, Path] | None = None,
        seconds: float = 0.0,
        summary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add or replace a stage entry. `outputs`/`inputs` lie inside the run directory;
        `external_inputs` (the user's video, say) are recorded by absolute path and hash."""
        ext = {
            k: {"path": str(Path(p).resolve()), "sha256": hash_path(Path(p))}
            for k, p in (external_inputs or {}).items()
        }
        entry = {
            "version": VERSION,
            "params": params,
            "inputs": {**ext, **{k: self._entry(p) for k, p in (inputs or {}).items()}},
            "outputs": {k: self._entry(p) for k, p in outputs.items()},
            "seconds": round(float(seconds), 2),
            "summary": summary or {},
        }
        self.data["stages"][stage] = entry
        return entry

    def add_outputs(self, stage: str, outputs: dict[str, Path]) -> None:
        """Add files a recorded stage wrote after it was recorded (the export's verification report)."""
        self.stage(stage)["outputs"].update({k: self._entry(p) for k, p in outputs.items()})

    def stage(self, stage: str) -> dict[str, Any]:
        try:
            return self.data["stages"][stage]
        except KeyError:
            raise CctvkitError(
                f"the run has no '{stage}' stage",
                self.path,
                f"run `trainer {stage} --run {self.run_dir}` first",
            ) from None

    def output(self, stage: str, key: str, verify: bool = True) -> Path:
        """Path of a stage output, checked against its recorded sha256."""
        entry = self.stage(stage)["outputs"].get(key)
        if entry is None:
            raise CctvkitError(f"stage '{stage}' recorded no output '{key}'", self.path, "re-run that stage")
        return self.verified(entry, verify)

    def verified(self, entry: dict[str, Any], verify: bool = True) -> Path:
        full = self.run_dir / entry["path"]
        if not full.exists():
            raise CctvkitError(
                "file listed in the manifest is missing", full, "re-run the stage that wrote it"
            )
        if verify and hash_path(full) != entry["sha256"]:
            raise CctvkitError(
                "sha256 does not match the manifest (changed or corrupt)",
                full,
                "re-run the stage that wrote it",
            )
        return full

    # --- models -----------------------------------------------------------------------------------
    def _extra_paths(self, spec: ModelSpec) -> dict[str, Path]:
        """Files a model needs beside its main file (the ncnn .bin); they live next to it, as the backends
        look for them."""
        folder = (self.run_dir / spec.path).parent
        return {Path(f).name: folder / Path(f).name for f in spec.extra_files}

    def add_model(self, name: str, spec: ModelSpec) -> None:
        full = self.run_dir / spec.path
        d = spec.to_json()
        d["sha256"] = sha256_file(full)
        d["extra_sha256"] = {k: sha256_file(p) for k, p in self._extra_paths(spec).items()}
        self.data["models"][name] = d

    def models(self, task: str | None = None) -> dict[str, ModelSpec]:
        out = {n: ModelSpec.from_json({k: v for k, v in d.items() if k != "extra_sha256"})
               for n, d in self.data.get("models", {}).items()}
        return {n: s for n, s in out.items() if task is None or s.task == task}

    def model_path(self, name: str, verify: bool = True) -> Path:
        specs = self.models()
        if name not in specs:
            raise CctvkitError(
                f"no model '{name}' in the manifest",
                self.path,
                f"choose one of: {', '.join(sorted(specs)) or 'none'}",
            )
        spec = specs[name]
        extra_sha = self.data["models"][name].get("extra_sha256", {})
        for fname, path in self._extra_paths(spec).items():
            if fname in extra_sha:
                self.verified({"path": path.relative_to(self.run_dir).as_posix(), "sha256": extra_sha[fname]}, verify)
        return self.verified({"path": spec.path, "sha256": spec.sha256}, verify)
