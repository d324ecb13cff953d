"""tests/edge/conftest.py's builders of tiny real model files, for tests outside tests/edge (a conftest is a
file, not an importable module: it is loaded by path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_by_path(name: str, path: Path) -> ModuleType:
    """A test helper file loaded as module `name`, for folders that are not on sys.path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def edge_builders() -> ModuleType:
    return load_by_path("edge_test_builders", ROOT / "tests" / "edge" / "conftest.py")


def const_detector_run(run: Path) -> Path:
    """A run whose one model `det` is a real ONNX detector with a constant head (one box, score 0.9)."""
    import numpy as np

    from edge.manifest import Manifest
    from edge.types import ModelSpec

    (run / "export").mkdir(parents=True)
    head = np.zeros((1, 5, 8), np.float32)
    head[0, :, 0] = [32, 32, 16, 40, 0.9]
    edge_builders().build_const_onnx(run / "export" / "det.onnx", head, (64, 64))
    m = Manifest.create(run, "run")
    m.record_stage("export", params={}, outputs={"det.onnx": run / "export" / "det.onnx"})
    m.add_model("det", ModelSpec(task="detect", format="onnx", precision="fp32", path="export/det.onnx",
                                 imgsz=(64, 64), class_names=["person"]))
    m.save()
    return run


TEACHER_IMGSZ = (64, 64)
TEACHER_BOX = (8.0, 20.0, 24.0, 56.0)  # in the 64 x 64 input: the teacher's one person, top left


def const_detector(path: Path, names: str = "{0: 'person', 1: 'car'}", score: float = 0.9) -> Path:
    """A teacher that finds one box (TEACHER_BOX, class 0) in every image: its metadata names the classes."""
    import numpy as np

    nc = len(eval(names))  # noqa: S307  (our own literal)
    head = np.zeros((1, 4 + nc, 8), np.float32)
    x1, y1, x2, y2 = TEACHER_BOX
    head[0, :5, 0] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score]
    meta = {"names": names, "imgsz": str(list(TEACHER_IMGSZ)), "task": "detect", "stride": "32"}
    return edge_builders().build_const_onnx(path, head, TEACHER_IMGSZ, metadata=meta)
