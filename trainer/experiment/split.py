"""The experiment's one split: time blocks with guard bands, by the rules `trainer import` uses.

The split is made once; every arm trains only on its train/val frames and is scored on its test frames,
written as a YOLO folder (images/ + labels/, hardlinks) beside split.json. The leakage check proves per
arm that no test frame (by file content and by source name) is in what the arm trains or validates on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_text, sha256_file
from edge.errors import CctvkitError
from edge.eval import natural_key
from edge.formats.yolo import list_images
from trainer.importer import SPLITS as SPLIT_NAMES
from trainer.importer import Frame, assign, find_frames, link_labelled, link_or_copy

from .config import SplitParams


class LeakageError(CctvkitError):
    """A test frame is in an arm's training or validation data."""


@dataclass
class ExperimentSplit:
    data: Path
    frames: list[Frame]
    splits: list[str | None]  # per frame: train / val / test, None inside a guard band
    blocks: list[str]
    params: SplitParams
    negatives: list[Path]
    neg_splits: list[str | None]
    neg_root: Path | None

    @property
    def image_root(self) -> Path:
        return self.data / "images" if (self.data / "images").is_dir() else self.data

    def of(self, *names: str) -> list[Frame]:
        """The frames of these splits, in time order."""
        return [f for f, s in zip(self.frames, self.splits, strict=True) if s in names]

    def rel(self, frame: Frame) -> str:
        return frame.image.relative_to(self.data).as_posix()

    def flat(self, frame: Frame) -> str:
        """A unique file name (nested folders joined by __), the name `trainer import` gives it too."""
        return "__".join(frame.image.relative_to(self.image_root).parts)

    def names(self, *splits: str) -> list[str]:
        return [self.rel(f) for f in self.of(*splits)]

    def negatives_of(self, name: str) -> list[Path]:
        return [p for p, s in zip(self.negatives, self.neg_splits, strict=True) if s == name]

    def negative_names(self, name: str) -> list[str]:
        assert self.neg_root is not None or not self.negatives
        return [p.relative_to(self.neg_root).as_posix() for p in self.negatives_of(name)]  # type: ignore[arg-type]


def make_split(data: Path, negatives: Path | None, params: SplitParams) -> ExperimentSplit:
    """Split `data` (YOLO images/ + labels/) and the optional negatives exactly as build_import does with
    the same block size, guard and fractions, so the `real` arm's import lands on the same frames."""
    data = Path(data)
    frames = find_frames(data)
    splits, blocks = assign(len(frames), params.block_size, params.val_fraction, params.test_fraction,
                            params.resolved_guard)
    negs: list[Path] = []
    neg_splits: list[str | None] = []
    if negatives is not None:
        if not Path(negatives).is_dir():
            raise CctvkitError("negatives folder not found", negatives, "fix `negatives:` in the config")
        negs = sorted(list_images(negatives), key=natural_key)
        # build_import's rule for plates: smaller blocks so every split gets some, no guard.
        neg_block = max(1, min(params.block_size, len(negs) // 10))
        neg_splits = list(assign(len(negs), neg_block, params.val_fraction, params.test_fraction, 0,
                                 "negatives")[0]) if negs else []
    out = ExperimentSplit(data, frames, splits, blocks, params, negs, neg_splits,
                          Path(negatives) if negatives else None)
    for name in SPLIT_NAMES:
        if not out.of(name):
            raise CctvkitError(f"the {name} split got no frames", data,
                               "use a smaller split.block_size or split.guard")
    return out


def write_test_set(split: ExperimentSplit, out: Path) -> dict[str, Any]:
    """out/images + out/labels (+ out/negatives): the held-out test frames every arm is scored on."""
    frames = split.of("test")
    boxes = 0
    for f in frames:
        link_labelled(f, out / "images" / split.flat(f))
        boxes += f.boxes
    negs = split.negatives_of("test")
    for p in negs:
        assert split.neg_root is not None
        link_or_copy(p, out / "negatives" / "__".join(p.relative_to(split.neg_root).parts))
    return {"path": str(out), "source": str(split.data), "frames": len(frames), "boxes": boxes,
            "frames_with_person": sum(f.boxes > 0 for f in frames),
            "negatives": len(negs), "negatives_path": str(out / "negatives") if negs else None}


def write_split_json(split: ExperimentSplit, path: Path, test_info: dict[str, Any]) -> None:
    k = split.params.block_size
    n = len(split.frames)
    doc = {
        "data": str(split.data),
        "negatives": str(split.neg_root) if split.neg_root else None,
        "rule": "trainer.importer.assign: blocks of block_size consecutive frames (natural name order) "
                "spread over train/val/test; the first `guard` frames after a boundary are dropped",
        "params": {**split.params.model_dump(), "guard": split.params.resolved_guard},
        "counts": {s: {"frames": len(split.of(s)), "boxes": sum(f.boxes for f in split.of(s))}
                   for s in SPLIT_NAMES},
        "test_set": test_info,
        "blocks": [{"block": b, "split": s, "first": split.rel(split.frames[b * k]),
                    "last": split.rel(split.frames[min(n, (b + 1) * k) - 1])} for b, s in enumerate(split.blocks)],
        "splits": {s: split.names(s) for s in SPLIT_NAMES},
        "dropped_by_guard": [split.rel(f) for f, s in zip(split.frames, split.splits, strict=True) if s is None],
        "negative_splits": {s: split.negative_names(s) for s in SPLIT_NAMES},
    }
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def pick_evenly(items: list[Any], percent: int) -> list[Any]:
    """round(percent % of items) (at least one), spread evenly: the centre of each of k equal stretches,
    so a small share still covers the whole footage (lighting drifts over a day)."""
    n = len(items)
    k = min(n, max(1, round(n * percent / 100)))
    return [items[(2 * i + 1) * n // (2 * k)] for i in range(k)]


def training_files(run_dir: Path) -> list[Path]:
    """Every file an arm's detector or classifier trains or validates on (its compose stage's data sets)."""
    compose = Path(run_dir) / "compose"
    out: list[Path] = []
    for split in ("train", "val"):
        for root in (compose / "detect" / "images" / split, compose / "classify" / split):
            if root.is_dir():
                out += [p for p in root.rglob("*") if p.is_file()]
    return out


def held_out_hashes(test_dir: Path, split: ExperimentSplit) -> dict[str, str]:
    """sha256 -> name of every test image and test negative, less the contents that a train/val/guard frame
    of the data set has too (a frozen camera repeats frames byte for byte: that is not the arm's leak)."""
    files = list_images(test_dir / "images")
    if (test_dir / "negatives").is_dir():
        files += list_images(test_dir / "negatives")
    out = {sha256_file(p): p.name for p in files}
    others = [f.image for f, s in zip(split.frames, split.splits, strict=True) if s != "test"]
    others += [p for p, s in zip(split.negatives, split.neg_splits, strict=True) if s != "test"]
    for p in others:
        out.pop(sha256_file(p), None)
    return out


def _identity(p: Path) -> tuple[int, int]:
    st = p.resolve().stat()  # through symlinks: a link to a test frame is that frame
    return st.st_dev, st.st_ino


def assert_no_leakage(arm: str, hashes: dict[str, str], files: list[Path], split: ExperimentSplit,
                      sources: Sequence[str] = ()) -> int:
    """Raise LeakageError when a file the arm trains on is a test frame's file (same inode, or a link to
    it), has a test frame's bytes, or when a source frame the arm names (relative to data/) is a test
    frame; returns how many files were checked."""
    test_names = set(split.names("test")) | set(split.negative_names("test"))
    for name in sources:
        if name in test_names:
            raise LeakageError(f"arm '{arm}' trains on test frame {name}", split.data,
                               "this is a bug in trainer/experiment: report it")
    test_files = [f.image for f in split.of("test")] + split.negatives_of("test")
    ids = {_identity(p): p.name for p in test_files}
    for p in files:
        h = sha256_file(p)
        same = ids.get(_identity(p)) or hashes.get(h)
        if same:
            raise LeakageError(f"arm '{arm}' trains on test frame {same}", p,
                               "this is a bug in trainer/experiment: report it")
    return len(files)
