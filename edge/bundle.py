"""`edge bundle RUN --model NAME --out DIR`: one model of a run, copied out for deployment.

DIR/<NAME>-<sha256[:12]>/ holds the model's files (the main file and the extra files its manifest entry
hashes in extra_sha256, e.g. the ncnn .bin beside the .param) and a manifest.json with that one entry, its
paths relative to the folder: a run of its own that `edge detect --manifest`, `edge run` (model.manifest)
and `edge check-config` load like any other, checking every file against the same sha256 as the run did.
The folder's name carries the sha256, so a deploy can keep the previous bundle beside the new one and a
changed model can never hide under an old name.

Each file is re-hashed after the copy and checked against the run's manifest; the folder is written as a
temp folder inside DIR and renamed when complete (edge/atomic.py), so a folder under its final name is
always whole. Bundling the same model again leaves an identical folder as it is.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from edge.atomic import atomic_dir, sha256_file, unwritable
from edge.errors import CctvkitError
from edge.manifest import FILENAME, Manifest

# The name becomes a folder name: one path component, nothing a shell or Ansible would trip over.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _sources(manifest: Manifest, name: str) -> tuple[dict[str, Any], dict[str, tuple[Path, str]]]:
    """The bundle's manifest entry for `name` and its files: bundle name -> (file in the run, sha256).
    The run's files are verified against its manifest first (Manifest.model_path)."""
    main = manifest.model_path(name)  # unknown name (lists the valid ones), missing or changed file
    entry = copy.deepcopy(manifest.data["models"][name])
    spec = manifest.models()[name]
    extra_sha = entry.get("extra_sha256", {})
    files = {main.name: (main, entry["sha256"])}
    for extra in spec.extra_files:
        fname = Path(extra).name
        if fname not in extra_sha:  # copied unchecked, it would be blessed with a hash made here
            raise CctvkitError(f"manifest entry models.{name} lists extra file {fname} without its sha256",
                               manifest.path, "re-run the export stage, which records extra_sha256")
        if fname in files or fname == FILENAME:
            raise CctvkitError(f"models.{name}: two files of the bundle would be named {fname}",
                               manifest.path, "re-export the model under distinct file names")
        files[fname] = (main.parent / fname, extra_sha[fname])
    entry["path"] = main.name
    entry["extra_files"] = [Path(f).name for f in spec.extra_files]
    entry["extra_sha256"] = {f: sha for f, (_, sha) in files.items() if f != main.name}
    return entry, files


def _same(folder: Path, name: str, entry: dict[str, Any], files: dict[str, str]) -> bool:
    """`folder` is a complete bundle of exactly this entry: its manifest holds it alone, its files are
    these and nothing else, each with its sha256."""
    try:
        m = Manifest.load(folder)
    except CctvkitError:
        return False
    if m.data["models"] != {name: entry}:
        return False
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}
    if present != {*files, FILENAME}:
        return False
    return all((folder / f).is_file() and sha256_file(folder / f) == sha for f, sha in files.items())


def _copy(src: Path, dst: Path, sha: str) -> None:
    """src to dst, on disk (fsync) before the folder is renamed, and its hash checked after the copy."""
    try:
        shutil.copyfile(src, dst)
        with open(dst, "rb") as f:
            os.fsync(f.fileno())
    except OSError as e:
        raise unwritable(dst.parent.parent, e) from e
    if sha256_file(dst) != sha:
        raise CctvkitError("the copy does not match the manifest's sha256 (changed while copying, or a bad"
                           " disk)", src, "run edge bundle again; if it fails again, check the disk")


def make_bundle(run: str | Path, name: str, out: str | Path) -> tuple[dict[str, Any], bool]:
    """Bundle model `name` of `run` into `out`; (the summary `edge bundle` prints, whether a folder was
    written: False when an identical one was there)."""
    manifest = Manifest.load(run)  # no manifest: CctvkitError
    entry, sources = _sources(manifest, name)
    if not _SAFE_NAME.fullmatch(name):
        raise CctvkitError(f"model name {name!r} cannot name a folder", manifest.path,
                           "rename the model (letters, digits, . _ -)")
    sha = entry["sha256"]
    version = f"{name}-{sha[:12]}"
    final = Path(out) / version
    files = {f: s for f, (_, s) in sources.items()}
    summary = {"name": name, "version": version, "dir": str(final.resolve()), "sha256": sha, "files": files}
    if final.is_dir() and _same(final, name, entry, files):
        return summary, False
    with atomic_dir(final) as tmp:
        for fname, (src, fsha) in sources.items():
            _copy(src, tmp / fname, fsha)
        bundle = Manifest.create(tmp, str(manifest.data.get("run", name)))
        bundle.data["models"] = {name: entry}
        bundle.data["bundle"] = {"model": name, "version": version}  # provenance; loaders ignore it
        bundle.save()
        # Loaded and checked as any reader will before it takes its final name: shape, confinement, hashes.
        Manifest.load(tmp).model_path(name)
    return summary, True


def report(summary: dict[str, Any], written: bool) -> None:
    """What `edge bundle` says on stderr (stdout is the JSON summary alone)."""
    if written:
        print(f"created {summary['dir']}", file=sys.stderr)
    else:
        print(f"unchanged: {summary['dir']} already holds this bundle, left as it is", file=sys.stderr)


__all__ = ["make_bundle", "report"]
