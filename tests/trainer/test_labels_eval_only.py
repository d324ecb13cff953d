"""`--labels` on `trainer scene` is for evaluation only: no stage before it opens a file under the labels
folder, the composed data set is byte-identical with and without it, and bad labels fail in one line."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_video as sv

from edge.errors import CctvkitError
from edge.eval.holdout import held_out_labelled, real_holdout
from edge.formats.yolo import save_yolo_labels
from edge.manifest import Manifest
from trainer.cli import main

N_FRAMES = 60
TINY = """
scene: {plate_frames: 20, calib_frames: 30, scan_stride: 1, holdout_frames: 12, hog: false}
compose: {n_images: 16, cls_size: 32}
"""
OPENED: list[str] = []
_WATCH: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCH and isinstance(args[0], str | Path):
        path = str(Path(args[0]).resolve()) if not str(args[0]).startswith("/") else str(args[0])
        if any(path.startswith(w) for w in _WATCH):
            OPENED.append(path)


sys.addaudithook(_audit)  # process-wide and permanent: it records only while _WATCH is set


def labelled_footage(root: Path) -> Path:
    """A YOLO folder of the synthetic walkers: frame_NNNN.jpg + labels with the true boxes."""
    bg = sv.background()
    for t in range(N_FRAMES):
        img = sv.frame_at(t, bg)
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"frame_{t:04d}.jpg"), img)
        boxes = sv.true_boxes(t)
        save_yolo_labels(root / "labels" / f"frame_{t:04d}.txt", np.zeros(len(boxes)), boxes, sv.W, sv.H)
    return root


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _scene_compose(tmp_path: Path, data: Path, run: str, labels: Path | None) -> Path:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    extra = ["--labels", str(labels)] if labels is not None else []
    assert main(["scene", "--run", str(tmp_path / run), "--video", str(data / "images"), "--config", str(cfg),
                 "--no-progress", *extra]) == 0
    assert main(["compose", "--run", str(tmp_path / run), "--config", str(cfg), "--no-progress"]) == 0
    return tmp_path / run


@pytest.mark.slow
def test_labels_never_reach_scene_or_compose(tmp_path: Path) -> None:
    data = labelled_footage(tmp_path / "footage")
    labels = tmp_path / "labels-copy"  # the same labels in their own folder, so any open is attributable
    labelled_footage(labels)
    _WATCH.append(str(labels.resolve()))
    try:
        plain = _scene_compose(tmp_path, data, "plain", None)
        OPENED.clear()
        with_labels = _scene_compose(tmp_path, data, "labelled", labels)
        # scene and compose never opened a file under the labels folder (Python-level opens; OpenCV's own
        # file reads are not audited, so the byte-identical data set below is the second half of the proof);
        # the check after the scene stage only listed it (listing raises no "open" event).
        assert OPENED == [], OPENED[:3]
        real_holdout(Manifest.load(tmp_path / "labelled"), labels, max_frames=2)
        assert OPENED, "the audit hook must see the evaluation reading the labels, or it proves nothing"
    finally:
        _WATCH.clear()
    assert _tree_hash(plain / "compose" / "detect") == _tree_hash(with_labels / "compose" / "detect")
    assert _tree_hash(plain / "compose" / "classify") == _tree_hash(with_labels / "compose" / "classify")
    m = Manifest.load(with_labels)
    rec = m.data["eval_labels"]
    n_hold = N_FRAMES - int(m.stage("scene")["summary"]["split"]["holdout_frames"][0])
    assert rec["held_out_labelled_frames"] == n_hold and rec["labelled_frames_in_training_part"] == N_FRAMES - n_hold
    data_set = real_holdout(m, labels, max_frames=0)
    assert len(data_set.frames) == n_hold and data_set.names[0] == f"images/frame_{N_FRAMES - n_hold:04d}.jpg"
    assert "eval_labels" not in Manifest.load(plain).data
    # `trainer export --labels` with labels of the run's own input scores only its held-out frames too.
    from export.verify_data import load_verify_set

    assert len(load_verify_set(Manifest.load(plain), labels, max_frames=0).frames) == n_hold

    # Labels of frames the input does not have, or only of training frames: one-line errors.
    stranger = labelled_footage(tmp_path / "stranger")
    (stranger / "images" / "frame_0003.jpg").rename(stranger / "images" / "other_0003.jpg")
    (stranger / "labels" / "frame_0003.txt").rename(stranger / "labels" / "other_0003.txt")
    with pytest.raises(CctvkitError, match=r"1 of 60 labelled frames are not frames of the run's input"):
        held_out_labelled(m, stranger)
    early = labelled_footage(tmp_path / "early")
    for t in range(N_FRAMES - n_hold, N_FRAMES):
        (early / "labels" / f"frame_{t:04d}.txt").unlink()
    with pytest.raises(CctvkitError, match=r"no labelled frame lies in the held-out part"):
        held_out_labelled(m, early)
