"""The on-device half must install and run without the workstation stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "ultralytics", "tensorflow")

PROBE = r"""
import importlib, json, pkgutil, sys
names = []
for pkg_name in ("edge", "bench"):
    pkg = importlib.import_module(pkg_name)
    names.append(pkg_name)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
        importlib.import_module(info.name)
        names.append(info.name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"imported": names, "heavy": heavy}))
"""


def test_edge_and_bench_never_import_workstation_libraries():
    out = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The probe must really have walked the packages, or the check below proves nothing.
    assert "edge.manifest" in result["imported"] and "bench.evaluate" in result["imported"]
    assert result["heavy"] == [], f"edge/bench pulled in {result['heavy']}"


def test_one_opencv_distribution_with_person_detectors():
    from importlib import metadata

    import cv2

    dists = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                    if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")})
    assert len(dists) == 1, f"several OpenCV distributions overwrite each other's cv2: {dists}"
    assert int(cv2.__version__.split(".")[0]) < 5
    assert len(cv2.HOGDescriptor_getDefaultPeopleDetector()) > 0


def test_layers_contract_is_kept_and_checked_by_make_lint():
    """trainer -> export -> bench -> edge, each importing only the layers below (pyproject.toml
    [tool.importlinter]); `make lint` (and so `make test`) runs the same check."""
    exe = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 1 kept, 0 broken." in out.stdout
    assert "trainer -> export -> bench -> edge KEPT" in out.stdout
    lint = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/lint-imports" in lint
    assert '"import-linter>=2"' in (ROOT / "pyproject.toml").read_text()
