"""What compose makes, planned before anything is made: the jobs of each split (composed, negative and real
images) and, afterwards, the classifier's no_person images that balance its person images.

Every job draws from its own generator seeded by (seed, split, index), so an image does not depend on how
many random numbers the ones before it used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.compose.params import ComposeParams
from trainer.compose.scene import RealFrame

SPLITS = ("train", "val")
SPLIT_CODE = {"train": 1, "val": 2}
CLS_JPEG_QUALITY = 95
EXTRA_NEGATIVE_BASE = 1_000_000  # index offset of classifier-only negatives: their seeds never meet images'
PLATE_STREAM = 0x91A7E  # the plate choice draws from its own generator: one plate gives the same images as ever
DISTRACTOR_STREAM = 0xD157  # so does the hard-negative choice: a scene without distractors composes as before


@dataclass(frozen=True)
class Job:
    split: str
    index: int  # within the split: names the files and seeds the image's generator
    source: str  # "composed" | "negative" | "real"
    real: RealFrame | None = None

    @property
    def name(self) -> str:
        return f"{self.index:05d}_{self.source}"

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index])

    def plate_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index, PLATE_STREAM])

    def distractor_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, SPLIT_CODE[self.split], self.index, DISTRACTOR_STREAM])


def plan_jobs(params: ComposeParams, real_pools: dict[str, list[RealFrame]]) -> list[Job]:
    n_val = min(max(1, round(params.n_images * params.val_fraction)), params.n_images - 1)
    jobs: list[Job] = []
    for split, n in (("train", params.n_images - n_val), ("val", n_val)):
        n_neg = round(n * params.negative_fraction)
        pool = real_pools[split]
        n_real = min(round(n * params.real_fraction), len(pool))
        n_comp = n - n_neg - n_real
        if n_comp < 1:  # tiny sets: a split without a single composite teaches nothing about persons
            n_neg, n_comp = max(0, n_neg - 1), n_comp + 1
        rng = np.random.default_rng([params.seed, SPLIT_CODE[split], 0x4EA1])
        picked = sorted(rng.choice(len(pool), n_real, replace=False).tolist()) if n_real else []
        sources = ["composed"] * n_comp + ["negative"] * n_neg
        jobs += [Job(split, i, s) for i, s in enumerate(sources)]
        jobs += [Job(split, len(sources) + k, "real", pool[i]) for k, i in enumerate(picked)]
    return jobs


def encode(img: np.ndarray, quality: int, path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CctvkitError("cannot encode JPEG", path)
    path.write_bytes(buf.tobytes())


def balance_classes(
    make_extras: Callable[[list[Job]], Iterable[dict[str, Any]]],
    cls_dir: Path,
    out: Path,
    negatives: dict[str, list[tuple[np.ndarray, dict]]],
    counts: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    """no_person gets as many images as person in each split: the detection negatives first, then extra
    jittered plates written for the classifier only (the plate is the only person-free material we have).
    make_extras(jobs) writes those extra images and returns their records, in order."""
    extra_jobs: list[Job] = []
    for split in SPLITS:
        want = counts[split]["person"]
        for small, rec in negatives[split][:want]:
            name = Path(rec["image"]).stem
            path = cls_dir / split / "no_person" / f"{name}.jpg"
            encode(small, CLS_JPEG_QUALITY, path)
            rec["classify"] = path.relative_to(out).as_posix()
        extra_jobs += [Job(split, EXTRA_NEGATIVE_BASE + k, "negative") for k in range(max(0, want - len(negatives[split])))]
        counts[split]["no_person"] = min(want, len(negatives[split])) + max(0, want - len(negatives[split]))
    return list(make_extras(extra_jobs)) if extra_jobs else []
