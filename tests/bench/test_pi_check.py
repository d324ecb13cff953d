"""benchmarks/pi_check.sh refuses what it cannot run (exit 2, one line) and benchmarks/pi_check_compare.py
judges x86 vs aarch64 results by the stated tolerance. (The emulated run itself takes 15-20 minutes on 2 cores,
too long for a test: `sudo make pi-check RUN=...`, see the README.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pi_check_compare  # noqa: E402

FRAMES = [f"f{i:02d}.jpg" for i in range(20)]


def side(path: Path, map50: float, counts: list[int], top: float = 0.5) -> Path:
    (path / "bench").mkdir(parents=True)
    cells = [{"model": "det", "backend": "onnxruntime", "task": "detect", "status": "ok", "map50": map50},
             {"model": "cls", "backend": "onnxruntime", "task": "classify", "status": "ok", "presence_f1": 0.9}]
    (path / "bench" / "results.json").write_text(json.dumps({"cells": cells}))
    models = {"det": {"task": "detect", "frames": {f: {"count": c, "top": top} for f, c in zip(FRAMES, counts, strict=True)}},
              "cls": {"task": "classify", "frames": {f: {"person": True, "prob": 0.9} for f in FRAMES}}}
    (path / "counts.json").write_text(json.dumps({"models": models}))
    (path / "detect-det.jsonl").write_text(json.dumps({"frame": "bus.jpg", "count": 4, "scores": [0.9]}) + "\n")
    return path


def test_within_tolerance_passes(tmp_path: Path) -> None:
    x = side(tmp_path / "x86", 0.80, [3] * 20)
    a = side(tmp_path / "arm", 0.805, [3] * 19 + [4], top=0.503)  # 95 % equal, delta 0.005
    assert pi_check_compare.main([str(x), str(a)]) == 0
    lines, ok = pi_check_compare.compare(x, a)
    row = next(ln for ln in lines if ln.startswith("| det "))
    assert "| 95.0 |" in row and "+0.0050" in row and row.endswith("| ok |") and "4 (0.9000)" in row


@pytest.mark.parametrize(("map50", "counts", "why"), [
    (0.815, [3] * 20, "|delta| > 0.01"),
    (0.80, [3] * 18 + [4, 4], "counts equal < 95%"),
])
def test_beyond_tolerance_fails(tmp_path: Path, map50: float, counts: list[int], why: str) -> None:
    x = side(tmp_path / "x86", 0.80, [3] * 20)
    a = side(tmp_path / "arm", map50, counts)
    lines, ok = pi_check_compare.compare(x, a)
    assert not ok and why in next(ln for ln in lines if ln.startswith("| det "))
    assert pi_check_compare.main([str(x), str(a)]) == 1


def test_a_missing_side_fails(tmp_path: Path) -> None:
    x = side(tmp_path / "x86", 0.80, [3] * 20)
    (tmp_path / "arm").mkdir()
    lines, ok = pi_check_compare.compare(x, tmp_path / "arm")
    assert not ok and "no bench result on aarch64" in "\n".join(lines)


@pytest.mark.parametrize(("args", "message"), [
    ([], "usage:"),
    (["/nonexistent-run"], "run directory not found"),
    (["."], "no manifest.json"),
])
def test_script_refuses_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "pi_check.sh"), *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                  "OUT": str(tmp_path / "out")})
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and message in p.stderr


def test_ncnn_twins_flip_the_fp16_choice_and_the_compare_pairs_them(tmp_path: Path) -> None:
    import pi_ncnn_twins

    doc = {"models": {"det-ncnn-fp32": {"format": "ncnn", "precision": "fp32", "notes": {"ncnn_fp16": False}},
                      "det-ncnn-int8": {"format": "ncnn", "precision": "int8", "notes": {}},
                      "det-onnx-fp32": {"format": "onnx", "precision": "fp32", "notes": {}}}}
    added = pi_ncnn_twins.add_twins(doc)
    # int8 without a recorded choice gets the backend's default (fp16 on): its twin is off
    assert added == ["det-ncnn-fp32-fp16-on", "det-ncnn-int8-fp16-off"]
    assert doc["models"]["det-ncnn-fp32-fp16-on"]["notes"]["ncnn_fp16"] is True
    assert doc["models"]["det-ncnn-int8-fp16-off"]["notes"]["ncnn_fp16"] is False
    assert pi_ncnn_twins.add_twins(doc) == []  # twins get no twins: a second run adds nothing

    for name, on_map in (("x86", 0.80), ("arm", 0.79)):
        d = tmp_path / name
        (d / "bench").mkdir(parents=True)
        cells = [{"model": m, "backend": "ncnn", "task": "detect", "status": "ok", "map50": v}
                 for m, v in (("det", 0.80), ("det-fp16-on", on_map))]
        (d / "bench" / "results.json").write_text(json.dumps({"cells": cells}))
        models = {m: {"task": "detect", "frames": {f: {"count": 3 if m == "det" or i else 2, "top": 0.5}
                                                   for i, f in enumerate(FRAMES)}} for m in ("det", "det-fp16-on")}
        (d / "counts.json").write_text(json.dumps({"models": models}))
    table = pi_check_compare.fp16_table(tmp_path / "x86", tmp_path / "arm")
    arm = next(ln for ln in table if ln.startswith("| det | aarch64 "))
    assert "| 0.8000 | 0.7900 | -0.0100 | 95.0 |" in arm and arm.endswith("| off |")


@pytest.mark.parametrize(("arm_map", "verdict"), [(0.815, "ok (wider bound)"), (0.83, "BEYOND: |delta| > 0.02")])
def test_ncnn_int8_has_its_documented_wider_bound_and_no_more(tmp_path: Path, arm_map: float, verdict: str) -> None:
    for name, v in (("x86", 0.80), ("arm", arm_map)):
        d = tmp_path / name
        (d / "bench").mkdir(parents=True)
        cell = {"model": "q", "backend": "ncnn", "task": "detect", "status": "ok", "map50": v}
        (d / "bench" / "results.json").write_text(json.dumps({"cells": [cell]}))
        frames = {f: {"count": 3, "top": 0.5} for f in FRAMES}
        (d / "counts.json").write_text(json.dumps({"models": {"q": {"task": "detect", "precision": "int8",
                                                                    "frames": frames}}}))
    lines, ok = pi_check_compare.compare(tmp_path / "x86", tmp_path / "arm")
    assert next(ln for ln in lines if ln.startswith("| q ")).endswith(f"| {verdict} |")
    assert ok == verdict.startswith("ok")
