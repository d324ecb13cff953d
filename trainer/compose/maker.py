"""One data set image per call, made and written: a composed image, an empty plate or a real frame, its label
file and classifier image; and the classifier-only negatives. The same in this process and in a worker."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.detect.preprocess import squash
from edge.formats.yolo import format_yolo_labels, parse_yolo_labels
from trainer.compose.jobs import CLS_JPEG_QUALITY, Job, encode
from trainer.compose.params import ComposeParams
from trainer.compose.scene import RealFrame

if TYPE_CHECKING:
    from trainer.compose.compositor import Prepared


def real_labels(frame: RealFrame, w: int, h: int) -> np.ndarray:
    if not frame.label.exists():
        return np.zeros((0, 4), np.float32)
    cls, xyxy = parse_yolo_labels(frame.label.read_text(), w, h, str(frame.label))
    return xyxy[cls == 0]



class ImageMaker:
    """Makes and writes one data set image (or one classifier-only negative) per call; in this process or in
    a worker (trainer/compose/workers.py), which returns the same small result."""

    def __init__(self, prep: Prepared, params: ComposeParams, out: Path, previews: frozenset[tuple[str, int]]):
        self.prep, self.p, self.out, self.previews = prep, params, out, previews
        self.det, self.cls_dir = out / "detect", out / "classify"

    def image(self, job: Job) -> dict[str, Any]:
        """Writes the job's image, label and classifier image; returns its record and what the caller needs."""
        p, scene, composer = self.p, self.prep.scene, self.prep.composer
        w, h = scene.size
        img_path = self.det / "images" / job.split / f"{job.name}.jpg"
        lbl_path = self.det / "labels" / job.split / f"{job.name}.txt"
        rec: dict[str, Any] = {"image": img_path.relative_to(self.out).as_posix(), "split": job.split,
                               "source": job.source}
        res: dict[str, Any] = {"rec": rec, "labels": 0, "dropped": 0, "person_image": False}
        classes = None
        if job.source == "real":
            assert job.real is not None
            xyxy = real_labels(job.real, w, h)
            shutil.copyfile(job.real.image, img_path)
            rec.update(frame_file=job.real.image.relative_to(scene.root).as_posix(), frame=job.real.frame,
                       n_labels=len(xyxy), classify=None)
        elif job.source == "negative":
            img, info = composer.negative(job)
            xyxy = np.zeros((0, 4), np.float32)
            encode(img, info["jitter"]["jpeg_quality"], img_path)
            res["small"] = squash(img, (p.cls_size, p.cls_size))  # a no_person candidate for the classifier
            rec.update(info, classify=None)
        else:
            img, xyxy, classes, info = composer.composed(job)
            encode(img, info["jitter"]["jpeg_quality"], img_path)
            rec.update(info, classify=None)
            res["labels"] = len(xyxy)
            res["dropped"] = sum(1 for q in info["persons"] if not q.get("labelled"))
            if len(xyxy):
                cpath = self.cls_dir / job.split / "person" / f"{job.name}.jpg"
                encode(squash(img, (p.cls_size, p.cls_size)), CLS_JPEG_QUALITY, cpath)
                rec["classify"] = cpath.relative_to(self.out).as_posix()
                res["person_image"] = True
            if (job.split, job.index) in self.previews:
                res["preview"] = (img, xyxy.tolist(), f"{job.name} ({len(xyxy)})")
        if classes is None:
            classes = np.zeros(len(xyxy), np.int64)  # real frames' persons (and no one) are class 0
        lbl_path.write_text(format_yolo_labels(classes, xyxy, w, h))
        rec["label"] = lbl_path.relative_to(self.out).as_posix()
        return res

    def extra_negative(self, job: Job) -> dict[str, Any]:
        """A classifier-only no_person image (a jittered plate); returns its record."""
        img, info = self.prep.composer.negative(job)
        path = self.cls_dir / job.split / "no_person" / f"{job.name}.jpg"
        encode(squash(img, (self.p.cls_size, self.p.cls_size)), CLS_JPEG_QUALITY, path)
        return {"image": path.relative_to(self.out).as_posix(), "split": job.split, "source": "negative", **info}
