"""The run manifest: the one hand-over between stages and to the device.

`runs/<name>/manifest.json` records, per stage, its parameters, inputs and outputs (path relative to the
run directory + sha256, directories as a tree hash) and timings, plus the exported models with their
ModelSpec. Readers resolve paths through it and refuse files whose sha256 does not match.

Confinement: every path the manifest hands out (stage outputs, stage inputs that are outputs of earlier
stages, model files) must resolve, symlinks followed, inside the run directory; loading a manifest with one
that does not fails naming its key, whatever its sha256. The user's own files (the video, --labels, a
teacher: `external_inputs`, `eval_labels`) are recorded by absolute path as provenance and are never
opened through the manifest's resolver.

Shape: loading checks every key the readers index (edge/manifest_shape.py; model entries by ModelSpec.from_json),
so a hand-edited or truncated manifest fails at load with one line naming the key.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.atomic import atomic_dir, atomic_write_text, sha256_file
from edge.errors import CctvkitError
from edge.manifest_shape import check_shape
from edge.stages import MODELS_STAGE, SCENE, STAGES, is_complete, stale_after
from edge.types import ModelSpec, SpecError

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


SCENE_STAGE = SCENE.name  # eval_labels were checked against this stage's frame keys


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
            if path.name != FILENAME:  # a video or model file passed where the run goes: say that, not "JSON"
                raise CctvkitError("not a run directory nor its manifest.json", path,
                                   "pass the run's folder (runs/<name>, the one holding manifest.json)") from None
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
        check_shape(data, path)  # every key the readers index, before any of them does
        manifest = cls(path.parent, data)
        manifest.check_confined()
        return manifest

    # --- confinement ------------------------------------------------------------------------------
    def inside(self, rel: str | Path, key: str) -> Path:
        """run_dir / rel, refused (naming the manifest key) unless it resolves inside the run directory."""
        full = self.run_dir / rel
        if Path(rel).is_absolute() or not full.resolve().is_relative_to(self.run_dir):
            raise CctvkitError(f"manifest entry {key} points outside the run directory ({rel})", self.path,
                               "paths in a manifest must be relative and inside the run directory: "
                               "re-run the stage that wrote it")
        return full

    def check_confined(self) -> None:
        """Every path this manifest can hand out resolves inside the run directory (see the module doc).
        Its shape (check_shape at load, or a writer's own entries) is given."""
        for stage, entry in self.data["stages"].items():
            for key, out in entry["outputs"].items():
                self.inside(out["path"], f"stages.{stage}.outputs.{key}")
            for key, inp in entry.get("inputs", {}).items():
                if not Path(inp["path"]).is_absolute():  # absolute: the user's file, provenance only
                    self.inside(inp["path"], f"stages.{stage}.inputs.{key}")
        for name, model in self.data["models"].items():
            self.inside(model["path"], f"models.{name}.path")

    def save(self) -> Path:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
        return self.path

    # --- stages -----------------------------------------------------------------------------------
    def write_stage(self, stage: str, body: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run body(tmp) into run_dir/<stage>/ atomically, record it and save: the one way a stage is written.

        body returns record_stage's keyword arguments, its outputs under tmp; they are checked against the
        stage's declaration (edge/stages.py) before the folder takes its final name."""
        t0 = time.perf_counter()
        final = self.run_dir / stage
        with atomic_dir(final) as tmp:
            record = body(tmp)
            if stage in STAGES:
                STAGES[stage].check(record["outputs"], tmp)
        record["outputs"] = {k: final / Path(v).relative_to(tmp) for k, v in record["outputs"].items()}
        entry = self.record_stage(stage, seconds=time.perf_counter() - t0, **record)
        self.save()
        return entry

    def _entry(self, path: Path, key: str) -> dict[str, Any]:
        full = Path(path).resolve()
        if not full.is_relative_to(self.run_dir):
            raise CctvkitError(f"{key} lies outside the run directory {self.run_dir}", path,
                               "this is a bug: a stage writes only inside its run directory; report it")
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
        `external_inputs` (the user's video, say) are recorded by absolute path and hash.

        Replacing a stage drops the stages built on it (edge/stages.py: PIPELINES), saying so on stderr,
        with the models when the export goes; "complete" then says whether a whole pipeline is there."""
        ext = {
            k: {"path": str(Path(p).resolve()), "sha256": hash_path(Path(p))}
            for k, p in (external_inputs or {}).items()
        }
        entry = {
            "version": VERSION,
            "params": params,
            "inputs": {**ext, **{k: self._entry(p, f"stages.{stage}.inputs.{k}") for k, p in (inputs or {}).items()}},
            "outputs": {k: self._entry(p, f"stages.{stage}.outputs.{k}") for k, p in outputs.items()},
            "seconds": round(float(seconds), 2),
            "summary": summary or {},
        }
        self._drop_stale(stage, entry)
        self.data["stages"][stage] = entry
        self.data["complete"] = is_complete(self.data["stages"])
        return entry

    def _drop_stale(self, stage: str, entry: dict[str, Any]) -> None:
        """Before `stage` is replaced: the stages built on the old one (a model stays listed under a video
        it was not trained on otherwise), and the models whose file the new export no longer records."""
        stale = stale_after(stage, self.data["stages"])
        for name in stale:
            del self.data["stages"][name]
        if stale:
            print(f"{self.path}: recording '{stage}' dropped the stages built on the old one: "
                  f"{', '.join(stale)} -- re-run them", file=sys.stderr)
        if stage == SCENE_STAGE and "eval_labels" in self.data and SCENE_STAGE in self.data["stages"]:
            # --labels were matched to the old scene's frames and held-out part: a new scene must match them again
            del self.data["eval_labels"]
            print(f"{self.path}: recording '{stage}' dropped the recorded --labels (matched to the old scene's "
                  "frames) -- pass --labels again", file=sys.stderr)
        if MODELS_STAGE in stale:
            self.data["models"] = {}
        elif stage == MODELS_STAGE:
            made = {o["path"] for o in entry["outputs"].values()}
            self.data["models"] = {n: d for n, d in self.data.get("models", {}).items() if d["path"] in made}

    def add_outputs(self, stage: str, outputs: dict[str, Path]) -> None:
        """Add files a recorded stage wrote after it was recorded (the export's verification report)."""
        self.stage(stage)["outputs"].update({k: self._entry(p, f"stages.{stage}.outputs.{k}")
                                             for k, p in outputs.items()})

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
        return self.verified(entry, verify, f"stages.{stage}.outputs.{key}")

    def verified(self, entry: dict[str, Any], verify: bool = True, key: str = "path") -> Path:
        full = self.inside(entry["path"], key)
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
        full = self.inside(spec.path, f"models.{name}.path")
        d = spec.to_json()
        d["sha256"] = sha256_file(full)
        d["extra_sha256"] = {k: sha256_file(p) for k, p in self._extra_paths(spec).items()}
        self.data["models"][name] = d

    def models(self, task: str | None = None) -> dict[str, ModelSpec]:
        out = {}
        for n, d in self.data.get("models", {}).items():
            try:
                out[n] = ModelSpec.from_json({k: v for k, v in d.items() if k != "extra_sha256"})
            except SpecError as e:  # load checked the file; this is an entry changed in memory since
                raise CctvkitError(f"manifest entry models.{n} is not a valid ModelSpec ({e})", self.path,
                                   "re-run the export stage") from None
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
                self.verified({"path": path.relative_to(self.run_dir).as_posix(), "sha256": extra_sha[fname]},
                              verify, f"models.{name}.extra_sha256.{fname}")
        return self.verified({"path": spec.path, "sha256": spec.sha256}, verify, f"models.{name}.path")
