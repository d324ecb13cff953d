"""Bad input to `edge detect` and to the manifest it reads (issue 14 rows 6 and 11): a manifest of the wrong shape
or a model entry with a missing or ill-typed key is one line naming the key, exit 2; a folder with an unreadable
image goes on without it, as the daemon does, and fails only when no image could be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from edge_builders import const_detector_run

from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.types import ModelSpec, SpecError

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path) -> Path:
    return const_detector_run(tmp_path / "run")


def _detect(source: Path, run: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "detect", str(source), "--manifest", str(run),
                           "--model", "det", "--threads", "1"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def _images(folder: Path, names: list[str], bad: set[str], shape: tuple[int, int] = (48, 64)) -> None:
    folder.mkdir(parents=True)
    for name in names:
        if name in bad:
            (folder / name).write_text("not an image\n")
        else:
            cv2.imwrite(str(folder / name), np.full((*shape, 3), 120, np.uint8))


# --- row 11 ----------------------------------------------------------------------------------------------------
def test_a_folder_with_one_bad_image_skips_it_and_says_so(tmp_path):
    run = _run(tmp_path)
    # 70 px wide: the letterbox scale 64/70 puts the constant box at fractional pixels
    _images(tmp_path / "imgs", ["a.png", "b.png", "c.png"], bad={"b.png"}, shape=(50, 70))
    proc = _detect(tmp_path / "imgs", run)
    assert proc.returncode == 0, proc.stderr
    frames = [json.loads(line)["frame"] for line in proc.stdout.splitlines()]
    assert frames == ["a.png", "c.png"]
    # boxes and scores print as the rounded decimals they are, not float32 noise (25.700000762939453)
    rec = json.loads(proc.stdout.splitlines()[0])
    assert rec["count"] == 1 and all(len(str(v).split(".")[-1]) <= 1 for v in rec["boxes"][0])
    assert len(str(rec["scores"][0]).split(".")[-1]) <= 3
    err = proc.stderr.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in proc.stderr
    assert err[0].startswith("warning:") and str(tmp_path / "imgs" / "b.png") in err[0] and "skipped" in err[0]
    assert err[1].startswith("2 frames, 1 unreadable images skipped"), err[1]


def test_a_folder_of_bad_images_fails_with_one_line(tmp_path):
    run = _run(tmp_path)
    _images(tmp_path / "imgs", ["a.jpg", "b.png"], bad={"a.jpg", "b.png"})
    proc = _detect(tmp_path / "imgs", run)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "none of the 2 images could be read" in errors[0] and "imgs" in errors[0]
    assert "Traceback" not in proc.stderr


# --- row 6 -----------------------------------------------------------------------------------------------------
def _tamper(run: Path, edit) -> None:
    doc = json.loads((run / "manifest.json").read_text())
    edit(doc)
    (run / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(("edit", "key"), [
    (lambda d: d["models"]["det"].pop("imgsz"), "'models.det.imgsz' is missing"),
    (lambda d: d["models"]["det"].update(imgsz="big"), "'models.det.imgsz' must be [height, width]"),
    (lambda d: d["models"]["det"].update(class_names="person"), "'models.det.class_names' must be"),
    (lambda d: d.update(stages="oops"), "'stages' must be an object"),
    (lambda d: d.update(models=["det"]), "'models' must be an object"),
], ids=["no-imgsz", "imgsz-string", "names-string", "stages-string", "models-list"])
def test_a_manifest_of_the_wrong_shape_names_the_key(tmp_path, edit, key):
    run = _run(tmp_path)
    _tamper(run, edit)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    line = _one_line_error(_detect(image, run), "manifest.json", f"manifest key {key}")
    assert "re-run" in line or "re-create" in line


@pytest.mark.parametrize(("doc", "key"), [
    ({"imgsz": [64]}, "imgsz"), ({"task": "segment"}, "task"), ({"person_class": 2}, "person_class"),
    ({"input_quant": {"scale": 0.1}}, "input_quant"), ({"extra": 1}, "extra"), ({"class_names": []}, "class_names"),
])
def test_model_spec_from_json_is_strict(doc, key):
    good = ModelSpec(task="detect", format="onnx", precision="fp32", path="m.onnx", imgsz=(64, 64),
                     class_names=["person"]).to_json()
    assert ModelSpec.from_json(good).imgsz == (64, 64)
    with pytest.raises(SpecError) as e:
        ModelSpec.from_json({**good, **doc})
    assert e.value.key == key and f"'{key}'" in str(e.value)


def test_manifest_load_checks_every_model_entry(tmp_path):
    run = _run(tmp_path)
    _tamper(run, lambda d: d["models"]["det"].update(person_classes=["person"]))
    with pytest.raises(CctvkitError, match=r"manifest key 'models\.det\.person_classes' must be a list of class"):
        Manifest.load(run)
