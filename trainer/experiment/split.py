"""The experiment's one split: time blocks with guard bands, by the rules `trainer import` uses.

The split is made once; every arm trains only on its train/val frames and is scored on its test frames,
written as a YOLO folder (images/ + labels/, hardlinks) beside split.json. The leakage check proves per
arm that no test frame (by file content and by source name) is in what the arm trains or validates on.

With a test clip (config `test_data`), `data` is split into train/val only (test_fraction 0) and the test
folder holds every frame of the test clip (and `test_negatives`); the clip must share no file and no bytes
with `data` or `negatives`, so the same leakage check (inode and bytes) covers it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_text, sha256_file
from edge.errors import CctvkitError
from edge.eval import natural_key
from edge.formats.yolo import list_images
from edge.manifest import Manifest
from edge.stages import DataSetOut, dataset_stage
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
    test_data: Path | None = None  # a test clip: the held-out set is all of it, not data's test blocks
    test_clip: list[Frame] = field(default_factory=list)
    test_negs: list[Path] = field(default_factory=list)
    test_neg_root: Path | None = None

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

    # The held-out set every arm is scored on: data's test split, or all of the test clip.
    def held_out(self) -> list[Frame]:
        return self.test_clip if self.test_data else self.of("test")

    def held_out_negatives(self) -> list[Path]:
        return self.test_negs if self.test_data else self.negatives_of("test")

    def held_out_root(self) -> tuple[Path, Path | None]:
        """(image root of the test frames, root of the test negatives)."""
        if self.test_data is None:
            return self.image_root, self.neg_root
        images = self.test_data / "images"
        return (images if images.is_dir() else self.test_data), self.test_neg_root

    def held_out_names(self) -> list[str]:
        """Test frames relative to their folder (data/, or test_data/ for a test clip)."""
        if self.test_data is None:
            return self.names("test")
        return [f.image.relative_to(self.test_data).as_posix() for f in self.test_clip]

    def held_out_negative_names(self) -> list[str]:
        root = self.held_out_root()[1]
        return [p.relative_to(root).as_posix() for p in self.held_out_negatives()] if root else []


def _sorted_images(folder: Path, key: str) -> list[Path]:
    if not Path(folder).is_dir():
        raise CctvkitError("negatives folder not found", folder, f"fix `{key}:` in the config")
    return sorted(list_images(folder), key=natural_key)


def make_split(data: Path, negatives: Path | None, params: SplitParams, test_data: Path | None = None,
               test_negatives: Path | None = None) -> ExperimentSplit:
    """Split `data` (YOLO images/ + labels/) and the optional negatives exactly as build_import does with
    the same block size, guard and fractions, so the `real` arm's import lands on the same frames.
    With `test_data` (another clip), data is split into train/val only and the test set is that clip."""
    data = Path(data)
    if test_data is not None:
        params = params.model_copy(update={"test_fraction": 0.0})  # import_run gets the same 0 (arms.py)
    elif test_negatives is not None:
        raise CctvkitError("test_negatives needs test_data", test_negatives, "add `test_data:` to the config")
    frames = find_frames(data)
    splits, blocks = assign(len(frames), params.block_size, params.val_fraction, params.test_fraction,
                            params.resolved_guard)
    negs: list[Path] = []
    neg_splits: list[str | None] = []
    if negatives is not None:
        negs = _sorted_images(negatives, "negatives")
        # build_import's rule for plates: smaller blocks so every split gets some, no guard.
        neg_block = max(1, min(params.block_size, len(negs) // 10))
        neg_splits = list(assign(len(negs), neg_block, params.val_fraction, params.test_fraction, 0,
                                 "negatives")[0]) if negs else []
    out = ExperimentSplit(data, frames, splits, blocks, params, negs, neg_splits,
                          Path(negatives) if negatives else None)
    for name in SPLIT_NAMES:
        if not out.of(name) and (name != "test" or test_data is None):
            raise CctvkitError(f"the {name} split got no frames", data,
                               "use a smaller split.block_size or split.guard")
    if test_data is not None:
        out.test_data = Path(test_data)
        for a, b in ((out.test_data, data), (data, out.test_data)):
            if a.resolve().is_relative_to(b.resolve()):
                raise CctvkitError(f"test_data is inside data or the same folder ({data})", test_data,
                                   "point test_data at another clip of the camera")
        if not out.test_data.is_dir():
            raise CctvkitError("test_data folder not found", test_data, "fix `test_data:` in the config")
        out.test_clip = find_frames(out.test_data)
        if test_negatives is not None:
            out.test_neg_root = Path(test_negatives)
            out.test_negs = _sorted_images(out.test_neg_root, "test_negatives")
        _check_other_clip(out)
    return out


def _check_other_clip(split: ExperimentSplit) -> None:
    """A test clip shares no file (inode) and no bytes with data or negatives: else the arms would train on
    test frames (a copy of data is not another clip)."""
    train = [f.image for f in split.frames] + split.negatives
    seen = {_identity(p): p for p in train} | {sha256_file(p): p for p in train}
    for p in [f.image for f in split.test_clip] + split.test_negs:
        other = seen.get(_identity(p)) or seen.get(sha256_file(p))
        if other is not None:
            raise CctvkitError(f"test frame {p.name} is the same image as {other} of the training data",
                               split.test_data, "test_data / test_negatives must be another clip, not a copy "
                               "of data / negatives")


def write_test_set(split: ExperimentSplit, out: Path) -> dict[str, Any]:
    """out/images + out/labels (+ out/negatives): the held-out test frames every arm is scored on (data's
    test split, or every frame of the test clip)."""
    frames = split.held_out()
    image_root, neg_root = split.held_out_root()
    boxes = 0
    for f in frames:
        link_labelled(f, out / "images" / "__".join(f.image.relative_to(image_root).parts))
        boxes += f.boxes
    negs = split.held_out_negatives()
    for p in negs:
        assert neg_root is not None
        link_or_copy(p, out / "negatives" / "__".join(p.relative_to(neg_root).parts))
    info = {"path": str(out), "source": str(split.test_data or split.data), "frames": len(frames),
            "boxes": boxes, "frames_with_person": sum(f.boxes > 0 for f in frames),
            "negatives": len(negs), "negatives_path": str(out / "negatives") if negs else None}
    if split.test_data is not None:  # named in split.json and the report beside the training clip
        info.update(training_data=str(split.data), other_clip=True,
                    negatives_source=str(neg_root) if neg_root else None)
    return info


def write_split_json(split: ExperimentSplit, path: Path, test_info: dict[str, Any]) -> None:
    k = split.params.block_size
    n = len(split.frames)
    held = {"train": split.of("train"), "val": split.of("val"), "test": split.held_out()}
    doc: dict[str, Any] = {
        "data": str(split.data),
        "negatives": str(split.neg_root) if split.neg_root else None,
        "rule": "trainer.importer.assign: blocks of block_size consecutive frames (natural name order) "
                "spread over train/val/test; the first `guard` frames after a boundary are dropped",
        "params": {**split.params.model_dump(), "guard": split.params.resolved_guard},
        "counts": {s: {"frames": len(fs), "boxes": sum(f.boxes for f in fs)} for s, fs in held.items()},
        "test_set": test_info,
        "blocks": [{"block": b, "split": s, "first": split.rel(split.frames[b * k]),
                    "last": split.rel(split.frames[min(n, (b + 1) * k) - 1])} for b, s in enumerate(split.blocks)],
        "splits": {"train": split.names("train"), "val": split.names("val"), "test": split.held_out_names()},
        "dropped_by_guard": [split.rel(f) for f, s in zip(split.frames, split.splits, strict=True) if s is None],
        "negative_splits": {"train": split.negative_names("train"), "val": split.negative_names("val"),
                            "test": split.held_out_negative_names()},
    }
    if split.test_data is not None:
        doc["rule"] = ("data: trainer.importer.assign with test_fraction 0: blocks of block_size consecutive "
                       "frames spread over train/val, the first `guard` frames after a boundary dropped; "
                       "test: every frame of test_data, another clip of the camera (names relative to it)")
        doc["test_data"] = str(split.test_data)
        doc["test_negatives"] = str(split.test_neg_root) if split.test_neg_root else None
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def pick_evenly(items: list[Any], percent: int) -> list[Any]:
    """round(percent % of items) (at least one), spread evenly: the centre of each of k equal stretches,
    so a small share still covers the whole footage (lighting drifts over a day)."""
    n = len(items)
    k = min(n, max(1, round(n * percent / 100)))
    return [items[(2 * i + 1) * n // (2 * k)] for i in range(k)]


def training_files(m: Manifest) -> list[Path]:
    """Every file an arm's detector or classifier trains or validates on (its compose or import stage's
    data sets)."""
    stage = dataset_stage(m.data["stages"])
    detect = m.output(stage, DataSetOut.detect.name, verify=False)
    classify = m.output(stage, DataSetOut.classify.name, verify=False)
    out: list[Path] = []
    for split in ("train", "val"):
        for root in (detect / "images" / split, classify / split):
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
    # Source names are relative to data/ (and negatives/): a test clip's frames are in another folder, so
    # only the file checks below can find one of them.
    test_files = [f.image for f in split.held_out()] + split.held_out_negatives()
    ids = {_identity(p): p.name for p in test_files}
    for p in files:
        h = sha256_file(p)
        same = ids.get(_identity(p)) or hashes.get(h)
        if same:
            raise LeakageError(f"arm '{arm}' trains on test frame {same}", p,
                               "this is a bug in trainer/experiment: report it")
    return len(files)
