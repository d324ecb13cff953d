"""`trainer import`: turn a user's own labelled footage into a run that `trainer train` and `export` take.

Frames of a fixed camera are consecutive stretches of video, so a random split would put near-identical
frames in train and test and the test score would measure memory. Frames are sorted by name (natural
order), cut into blocks of K consecutive frames, and whole blocks go to train/val/test, spread over the
footage (lighting drifts over a day, so no split should be one end of it). The first `guard` frames of a
block that follows a block of another split are left out, so one person walking across a boundary does
not land on both sides.

The result is recorded as the run's "import" stage (its outputs declared in edge/stages.py: ImportOut):
detect/ and classify/, the data sets `trainer train` and `trainer export` read where a composed run has its
compose stage's, plus "holdout" (the test split as images/ + labels/) for `trainer export --labels` and
`bench run --labels`, with the test split's --negatives in holdout/negatives/.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.progress import track

from edge.atomic import atomic_dir
from edge.detect.preprocess import squash
from edge.errors import CctvkitError
from edge.eval.labelled import list_labelled, load_label_file, natural_key, read_image
from edge.formats.yolo import label_path_for, list_images, parse_yolo_labels, save_data_yaml
from edge.manifest import Manifest
from edge.stages import IMPORT

SPLITS = ("train", "val", "test")
CLASSES = ("person", "no_person")
TINY_CLASS = 20  # fewer images than this in a classifier split: the classifier will barely learn it
console = Console(stderr=True)


@dataclass(frozen=True)
class Frame:
    image: Path
    label: Path | None  # None: no label file (a frame with no person, by the YOLO convention)
    boxes: int


def _decode(path: Path) -> np.ndarray:
    return read_image(path, "re-export it as JPEG/PNG or delete it and its label")


def _count_boxes(label: Path) -> int:
    """Boxes of one label file, by edge/eval's rules (the same as every scorer's); one class only."""
    cls, _ = parse_yolo_labels(label.read_text(), 1, 1, str(label))
    if len(cls) and (cls != 0).any():
        raise CctvkitError(f"class id {int(cls[cls != 0][0])} found; import takes one class, 0 = person",
                           label, "map person to class 0 and drop other classes")
    load_label_file(label, 1, 1, 0)  # coordinates outside the image are an error here as everywhere
    return len(cls)


def find_frames(data: Path) -> list[Frame]:
    """Images under data/ (data/images/... + data/labels/..., or .txt beside each image), in time order,
    checked by edge/eval's folder rules (no orphan label, at least one label file)."""
    data = Path(data)
    if not data.is_dir():
        raise CctvkitError("not a folder", data, "pass --data DIR with images/ and labels/")
    frames = []
    for p in list_labelled(data):
        label = label_path_for(p)
        found = label.is_file()
        frames.append(Frame(p, label if found else None, _count_boxes(label) if found else 0))
    return frames


def split_blocks(n_items: int, block_size: int, val_fraction: float, test_fraction: float,
                 what: str = "frames") -> list[str]:
    """Split of each block of `block_size` consecutive items, spread evenly over the footage."""
    n_blocks = math.ceil(n_items / block_size)
    quota = {"val": max(1, round(n_blocks * val_fraction)),
             "test": max(1, round(n_blocks * test_fraction)) if test_fraction > 0 else 0}
    quota["train"] = n_blocks - quota["val"] - quota["test"]
    if quota["train"] < 1:
        raise CctvkitError(f"{n_items} {what} make only {n_blocks} blocks of {block_size}, too few for "
                           f"train/val{'/test' if quota['test'] else ''}", None,
                           "pass a smaller --block-size (or add footage)")
    # Largest-deficit interleaving: block i goes to the split furthest behind its share of the first i blocks.
    done = dict.fromkeys(SPLITS, 0)
    out = []
    for i in range(n_blocks):
        split = max(SPLITS, key=lambda s: (quota[s] * (i + 1) / n_blocks - done[s], -SPLITS.index(s)))
        done[split] += 1
        out.append(split)
    return out


def assign(n_items: int, block_size: int, val_fraction: float, test_fraction: float, guard: int,
           what: str = "frames") -> tuple[list[str | None], list[str]]:
    """Per item: its split, or None inside a guard band; and the per-block splits."""
    blocks = split_blocks(n_items, block_size, val_fraction, test_fraction, what)
    out: list[str | None] = []
    for i in range(n_items):
        b, offset = divmod(i, block_size)
        after_other = b > 0 and blocks[b - 1] != blocks[b]
        out.append(None if after_other and offset < guard else blocks[b])
    return out, blocks


def link_or_copy(src: Path, dst: Path) -> str:
    """Hardlink (no space, keeps a real path), else symlink, else copy; returns which was done."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for how, fn in (("hardlink", os.link), ("symlink", lambda s, d: os.symlink(Path(s).resolve(), d))):
        try:
            fn(src, dst)
            return how
        except OSError:
            continue
    shutil.copy2(src, dst)
    return "copy"


def link_labelled(frame: Frame, dst: Path) -> str:
    """The frame's image at dst and its label (an explicit empty one for a frame with no person) beside it
    in the YOLO layout; returns how the image was linked."""
    how = link_or_copy(frame.image, dst)
    label_dst = label_path_for(dst)
    label_dst.parent.mkdir(parents=True, exist_ok=True)
    if frame.label is not None:
        link_or_copy(frame.label, label_dst)
    else:
        label_dst.write_text("")
    return how


def _write_jpeg(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise CctvkitError("cannot encode JPEG", path, "check free disk space")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf.tofile(str(path))


def _flat_name(path: Path, root: Path) -> str:
    """Unique file name for an image from nested folders (a/b/x.jpg -> a__b__x.jpg)."""
    return "__".join(path.relative_to(root).parts)


def build_import(out: Path, data: Path, negatives: Path | None, *, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, block_size: int = 100, guard: int | None = None,
                 cls_size: int = 224, progress: bool = True) -> dict[str, Any]:
    """Write detect/, classify/, holdout/ and import.json into out (an empty folder); returns the summary."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise CctvkitError(f"fractions val={val_fraction} test={test_fraction} are out of range", None,
                           "use 0 < --val-fraction, 0 <= --test-fraction, and a sum below 1")
    if block_size < 1:
        raise CctvkitError(f"--block-size {block_size} must be >= 1", None, "pass e.g. --block-size 100")
    guard = max(0, block_size // 20) if guard is None else guard
    frames = find_frames(data)
    negs = [] if negatives is None else sorted(list_images(negatives), key=natural_key)
    n_splits = 3 if test_fraction > 0 else 2
    if negatives is not None and len(negs) < n_splits:
        raise CctvkitError(f"{len(negs)} images in the negatives folder, need {n_splits} or more",
                           negatives, "add person-free frames of this camera, or leave out --negatives")
    image_root = data / "images" if (data / "images").is_dir() else data
    splits, blocks = assign(len(frames), block_size, val_fraction, test_fraction, guard)
    # Fewer negatives (background plates) than frames: smaller blocks, so every split still gets some.
    neg_block = max(1, min(block_size, len(negs) // 10))
    neg_splits = assign(len(negs), neg_block, val_fraction, test_fraction, 0, "negatives")[0] if negs else []
    has_test = "test" in blocks
    links: dict[str, int] = {}
    counts = {s: {"frames": 0, "boxes": 0, "empty": 0} for s in SPLITS if s != "test" or has_test}
    cls_counts = {s: dict.fromkeys(CLASSES, 0) for s in counts}
    listing: dict[str, list[str]] = {s: [] for s in counts}
    neg_listing: dict[str, list[str]] = {s: [] for s in counts}
    items = [(f, s, "frame") for f, s in zip(frames, splits, strict=True)]
    items += [(Frame(p, None, 0), s, "negative") for p, s in zip(negs, neg_splits, strict=True)]
    for frame, split, kind in track(items, description="import", disable=not progress, transient=True):
        img = _decode(frame.image)  # every image is decoded once: a broken file fails here, not in training
        if split is None:
            continue
        root = image_root if kind == "frame" else negatives
        name = _flat_name(frame.image, root)
        cls = "person" if frame.boxes else "no_person"
        stem = Path(name).stem if kind == "frame" else f"neg__{Path(name).stem}"
        _write_jpeg(out / "classify" / split / cls / f"{stem}.jpg", squash(img, (cls_size, cls_size)))
        cls_counts[split][cls] += 1
        if kind == "negative":
            neg_listing[split].append(frame.image.relative_to(negatives).as_posix())
            if split == "test":  # person-free test frames beside the held-out set, for the classifier's score
                link_or_copy(frame.image, out / "holdout" / "negatives" / name)
            continue
        listing[split].append(frame.image.relative_to(data).as_posix())
        targets = [out / "detect" / "images" / split / name]
        if split == "test":
            targets.append(out / "holdout" / "images" / name)
        for dst in targets:
            how = link_labelled(frame, dst)
            links[how] = links.get(how, 0) + 1
        counts[split]["frames"] += 1
        counts[split]["boxes"] += frame.boxes
        counts[split]["empty"] += frame.boxes == 0
    for split, c in counts.items():
        if c["frames"] == 0:
            raise CctvkitError(f"the {split} split got no frames", data,
                               "pass a smaller --block-size or --guard")
    save_data_yaml(out / "detect" / "data.yaml", ["person"], {s: f"images/{s}" for s in counts})
    warnings = _class_warnings(cls_counts)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")
    doc = {"block_size": block_size, "guard": guard, "blocks": _block_table(frames, blocks, block_size, data),
           "negative_block_size": neg_block, "splits": listing, "negative_splits": neg_listing,
           "dropped_by_guard": [f.image.relative_to(data).as_posix()
                                for f, s in zip(frames, splits, strict=True) if s is None]}
    (out / "import.json").write_text(json.dumps(doc, indent=1) + "\n")
    return {"frames": len(frames), "negatives": len(negs), "blocks": len(blocks), "block_size": block_size,
            "guard": guard, "dropped_by_guard": len(doc["dropped_by_guard"]), "detect": counts,
            "classify": cls_counts, "links": links, "warnings": warnings}


def _block_table(frames: list[Frame], blocks: list[str], k: int, data: Path) -> list[dict[str, Any]]:
    return [{"block": b, "split": s, "first": frames[b * k].image.relative_to(data).as_posix(),
             "last": frames[min(len(frames), (b + 1) * k) - 1].image.relative_to(data).as_posix()}
            for b, s in enumerate(blocks)]


def _class_warnings(cls_counts: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for split, c in cls_counts.items():
        for cls, n in c.items():
            if split != "test" and n < TINY_CLASS:
                hint = ": pass --negatives (person-free frames) or more footage" if cls == "no_person" else ""
                out.append(f"classifier {split}/{cls} has only {n} images{hint}")
        lo, hi = min(c.values()), max(c.values())
        if split == "train" and lo and hi / lo > 5:
            out.append(f"classifier train classes are imbalanced ({c}): it may lean to the larger one")
    return out


def import_run(data: Path, name: str, runs_dir: Path, negatives: Path | None = None, *, force: bool = False,
               progress: bool = True, **kw: Any) -> Manifest:
    """Create runs_dir/name atomically with a manifest whose "import" stage holds the imported data sets."""
    from trainer import pipeline

    data = Path(data).resolve()
    negatives = Path(negatives).resolve() if negatives else None
    if negatives is not None and not negatives.is_dir():
        raise CctvkitError("negatives folder not found", negatives,
                           "pass --negatives DIR of person-free frames")
    pipeline.check_writable(Path(runs_dir))
    final = Path(runs_dir) / name
    if final.exists() and not force:
        raise CctvkitError("run directory already exists", final, "pass --name NEW or --force to replace it")
    with atomic_dir(final) as tmp:
        manifest = Manifest.create(tmp, name)
        params = {"source": "import", "data": str(data), "negatives": str(negatives) if negatives else None,
                  **kw}

        def body(out: Path) -> dict[str, Any]:
            summary = build_import(out, data, negatives, progress=progress, **kw)
            params["guard"] = summary["guard"]  # the default depends on the block size
            ext = {"data": data, **({"negatives": negatives} if negatives else {})}
            return {"params": params, "outputs": IMPORT.collect(out), "external_inputs": ext, "summary": summary}

        manifest.write_stage(IMPORT.name, body)
    return Manifest.load(final)
