"""`bench run` end to end on a tiny run of real model files with known outputs, plus its bad-input paths."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from tinyrun import BOX, FRAME, N_HOLDOUT, background, with_person

from bench.cli import main
from bench.schema import SCHEMA_VERSION, load_results
from edge.backends import available_backends
from edge.errors import CctvkitError
from edge.formats.yolo import save_yolo_labels


def run_bench(tmp_path: Path, *args: str) -> tuple[int, dict | None]:
    out = tmp_path / "out"
    rc = main(["run", "--no-progress", "--out", str(out), *args])
    doc = load_results(out) if (out / "results.json").exists() else None
    return rc, doc


def cells_by_id(doc: dict) -> dict[str, dict]:
    return {c["id"]: c for c in doc["cells"]}


def test_matrix_reports_and_known_accuracy(tiny_run, tmp_path, capsys):
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1,2", "--frames", "5")
    assert rc == 0 and doc is not None and doc["schema_version"] == SCHEMA_VERSION
    cells = cells_by_id(doc)
    ncnn_ok = available_backends()["ncnn"] is None
    # every model on every backend that reads its format, at each thread count
    expected = {f"{m}/{b}/t{t}" for m, b in (("det-onnx", "onnxruntime"), ("cls-onnx", "onnxruntime"),
                                             ("det-ncnn", "ncnn"), ("broken", "onnxruntime")) for t in (1, 2)}
    assert set(cells) == expected
    # 6 held-out frames with a person + the same 6 with the person painted over (person-free frames)
    assert doc["data"]["frames"] == N_HOLDOUT and doc["data"]["frames_with_person"] == N_HOLDOUT
    assert doc["data"]["negative_frames"] == N_HOLDOUT
    for cid in ("det-onnx/onnxruntime/t1", "det-onnx/onnxruntime/t2") + (("det-ncnn/ncnn/t1",) if ncnn_ok else ()):
        c = cells[cid]
        assert c["status"] == "ok", c.get("reason")
        # the constant box is the labelled person: every person found (box scores are on the labelled
        # frames), and a false alarm on every erased frame (presence counts those too)
        assert c["box_recall"] == pytest.approx(1.0) and c["box_precision"] == pytest.approx(1.0)
        assert c["count_mae"] == 0.0 and c["box_f1"] == pytest.approx(1.0)
        assert c["presence_f1"] == pytest.approx(2 / 3) and c["presence_accuracy"] == pytest.approx(0.5)
        assert c["map50"] == pytest.approx(1.0, abs=1e-6)  # TPs outrank the tied FPs (stable order, as COCOeval)
        assert c["speed_frames"] == 5 and c["fps_sustained"] > 0 and c["cold_start_s"] >= c["load_s"] > 0
        assert c["latency_p50_ms"] <= c["latency_p95_ms"] <= c["latency_p99_ms"]
        assert c["infer_p50_ms"] <= c["latency_p99_ms"] and c["peak_rss_mb"] > 10
        assert len(c["cpu_percent_per_core"]) >= 1
    cls = cells["cls-onnx/onnxruntime/t1"]
    assert cls["status"] == "ok" and cls["map50"] is None and cls["presence_f1"] == pytest.approx(2 / 3)
    broken = cells["broken/onnxruntime/t1"]
    assert broken["status"] == "failed" and "cannot load" in broken["reason"] and "broken.onnx" in broken["reason"]

    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(expected) and {r["status"] for r in rows} >= {"ok", "failed"}
    md = (out / "results.md").read_text()
    assert "## Detection vs classification" in md and "## Failed cells" in md and "broken/onnxruntime/t1" in md
    # what picked the kernels: this CPU's features and each runtime's line; ncnn's per-model fp16 choice
    assert doc["host"]["cpu"] and set(doc["host"]["kernels"]) >= {"onnxruntime"}
    assert "- kernels: CPU " in md and "onnxruntime: MLAS" in md
    if ncnn_ok:  # the tiny fp32 ncnn spec records no choice: fp32 maths, as the backend's default says
        assert cells["det-ncnn/ncnn/t1"]["backend_options"] == {"fp16": False, "int8": False}
        assert "`det-ncnn/ncnn/t1` fp16 False, int8 False" in md
    assert "backend_options" not in cells["det-onnx/onnxruntime/t1"]
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert doc["verdict"]["budgets"] and doc["verdict"]["pareto"]
    printed = capsys.readouterr().out
    assert "failed broken/onnxruntime/t1" in printed and "presence F1" in printed


def test_backend_that_cannot_read_a_format_fails_only_its_cell(tiny_run, tmp_path):
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--frames", "3",
                        "--backends", "onnxruntime", "--only", "det-onnx,det-ncnn", "--no-plots")
    assert rc == 0
    cells = cells_by_id(doc)
    assert cells["det-onnx/onnxruntime/t1"]["status"] == "ok"
    ncnn = cells["det-ncnn/-/t1"]
    assert ncnn["status"] == "failed" and "no selected backend (onnxruntime) reads ncnn" in ncnn["reason"]
    assert not (tmp_path / "out" / "pareto.png").exists()


def test_changed_model_file_fails_its_cell(tiny_run, tmp_path):
    with open(tiny_run / "export" / "cls.onnx", "ab") as f:
        f.write(b"\0")
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run / "manifest.json"), "--threads", "1", "--frames", "2",
                        "--only", "cls-onnx,det-onnx", "--no-plots")
    cells = cells_by_id(doc)
    assert rc == 0 and cells["det-onnx/onnxruntime/t1"]["status"] == "ok"
    assert "sha256 does not match" in cells["cls-onnx/onnxruntime/t1"]["reason"]


def test_all_cells_failed_exits_1(tiny_run, tmp_path):
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--only", "broken", "--no-plots")
    assert rc == 1 and doc["cells"][0]["status"] == "failed"


@pytest.mark.parametrize("args, expect", [
    (["--backends", "tensorrt"], "unknown backend 'tensorrt'"),
    (["--threads", "0"], "thread counts must be >= 1"),
    (["--threads", "two"], "cannot read thread count list"),
    (["--only", "nope"], "no model named nope"),
    (["--duration", "ten minutes"], "cannot read duration"),
    (["--negatives", "/tmp"], "--negatives needs --labels"),
])
def test_bad_options_are_one_line_errors(tiny_run, tmp_path, capsys, args, expect):
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expect in err[0]
    assert not (tmp_path / "out").exists()  # nothing half-written


def _yolo_folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"p{i}.jpg"), with_person(background(i)))
        save_yolo_labels(root / "labels" / f"p{i}.txt", np.zeros(1, np.int64), BOX, FRAME[1], FRAME[0])
    return root


def test_labels_folder_with_negatives(tiny_run, tmp_path):
    labels = _yolo_folder(tmp_path / "yolo")
    neg = tmp_path / "neg"
    neg.mkdir()
    for i in range(4):
        cv2.imwrite(str(neg / f"n{i}.jpg"), background(50 + i))
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--frames", "3", "--only",
                        "det-onnx", "--labels", str(labels), "--negatives", str(neg), "--no-plots")
    c = doc["cells"][0]
    assert rc == 0 and doc["data"]["frames"] == 3 and doc["data"]["frames_with_person"] == 3
    assert doc["data"]["negative_frames"] == 4
    assert c["box_recall"] == pytest.approx(1.0) and c["presence_f1"] == pytest.approx(2 * 3 / (2 * 3 + 4))


def test_labels_that_do_not_match_frames(tiny_run, tmp_path, capsys):
    labels = _yolo_folder(tmp_path / "yolo")
    orphan = labels / "labels" / "zzz.txt"
    orphan.write_text("0 0.5 0.5 0.1 0.1\n")
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), "--labels", str(labels))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "zzz.txt" in err and "no matching image" in err and " -- " in err
    orphan.unlink()
    (labels / "labels" / "p1.txt").write_text("0 48 50 24 60\n")  # pixels, not normalised
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), "--labels", str(labels))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "p1.txt" in err and "outside 0..1" in err
    (labels / "labels" / "p1.txt").write_text("0 0.5 0.5 0.2 0.6\n")
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), "--labels", str(labels), "--label-class", "3")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no class 3" in err and "--label-class" in err
    shutil.rmtree(labels / "labels")
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), "--labels", str(labels))
    assert rc == 2 and "none of the 3 images has a label file" in capsys.readouterr().err


def test_source_folder_and_empty_source(tiny_run, tmp_path, capsys):
    frames = tmp_path / "cam"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.jpg"), background(i))
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--frames", "6", "--only",
                        "cls-onnx", "--source", str(frames), "--no-plots")
    assert rc == 0 and "images" in doc["speed_feed"] and doc["cells"][0]["speed_frames"] == 6
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    capsys.readouterr()
    rc, _ = run_bench(tmp_path, "--models", str(tiny_run), "--source", str(empty))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "empty.mp4" in err[0]


def test_duration_records_a_timeline(tiny_run, tmp_path):
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--only", "cls-onnx",
                        "--duration", "2.5s")
    c = doc["cells"][0]
    assert rc == 0 and c["speed_seconds"] >= 2.5 and len(c["timeline"]) >= 2
    assert all(p["fps"] >= 0 and "temp_c" in p and "arm_freq_mhz" in p for p in c["timeline"])
    png = tmp_path / "out" / "timeline-cls-onnx_onnxruntime_t1.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compare_prints_differences(tiny_run, tmp_path, capsys):
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--frames", "3", "--no-plots",
                        "--only", "det-onnx,cls-onnx")
    a = tmp_path / "out" / "results.json"
    b_doc = json.loads(a.read_text())
    det = next(c for c in b_doc["cells"] if c["model"] == "det-onnx")
    det["fps_sustained"] *= 2
    det["presence_f1"] = 0.5
    b_doc["cells"] = [c for c in b_doc["cells"] if c["model"] != "cls-onnx"]
    b = tmp_path / "b.json"
    b.write_text(json.dumps(b_doc))
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "FPS sustained" in out and "better" in out and "presence F1" in out and "worse" in out
    assert "only in A: cls-onnx/onnxruntime/t1" in out
    assert main(["compare", str(a), str(a)]) == 0 and "no differences" in capsys.readouterr().out
    with pytest.raises(CctvkitError, match="not a `bench run` results file"):
        load_results(tiny_run / "manifest.json")
    assert main(["compare", str(a), str(tiny_run / "manifest.json")]) == 2


def test_results_of_an_older_schema_name_their_version(tmp_path):
    old = tmp_path / "results.json"
    old.write_text(json.dumps({"schema_version": 1, "rows": []}))  # the demo's bench stage, schema 1
    with pytest.raises(CctvkitError, match=f"results schema version 1 .* not the supported {SCHEMA_VERSION}"):
        load_results(tmp_path)
    old.write_text(json.dumps({"schema": "cctvkit.bench", "schema_version": 2, "cells": []}))
    with pytest.raises(CctvkitError, match=f"results schema version 2 is not the supported {SCHEMA_VERSION}"):
        load_results(old)


def _vs_ultralytics_script():
    """benchmarks/bench_vs_ultralytics.py (a script, not a package module): bench itself never loads Ultralytics."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_vs_ultralytics.py"
    spec = importlib.util.spec_from_file_location("bench_vs_ultralytics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vs_ultralytics_times_the_same_files(tiny_run, tmp_path, monkeypatch, capsys):
    script = _vs_ultralytics_script()
    if why := script.ultralytics_unavailable():  # find_spec only: importing it raw would skip our offline setup
        pytest.skip(why)
    out = tmp_path / "out"
    rc = script.main(["--no-progress", "--out", str(out), "--models", str(tiny_run), "--threads", "1",
                      "--frames", "4", "--no-plots", "--only", "det-onnx,det-ncnn"])
    doc = load_results(out)
    rows = {r["model"]: r for r in doc["vs_ultralytics"]}
    assert rc == 0 and rows["det-onnx"]["ultralytics_fps"] > 0
    assert rows["det-onnx"]["ratio"] == pytest.approx(rows["det-onnx"]["cctvkit_fps"] / rows["det-onnx"]["ultralytics_fps"])
    assert "export folder" in rows["det-ncnn"]["note"] and "ratio" not in rows["det-ncnn"]
    assert "vs Ultralytics det-onnx:" in capsys.readouterr().out
    assert "## cctvkit vs Ultralytics predict" in (tmp_path / "out" / "results.md").read_text()
    # bench run alone has no such option: the device install has no Ultralytics
    with pytest.raises(SystemExit):
        main(["run", "--models", str(tiny_run), "--vs-ultralytics"])


def test_pi_readings_temperature_throttling_and_clock(tiny_run, tmp_path, monkeypatch):
    """On a Pi the readings come from vcgencmd and the SoC thermal zone; here both are stand-ins with the
    Pi's output format (the probes of edge/metrics/system.py parse them for real)."""
    import bench.sysmon

    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "vcgencmd"
    fake.write_text('#!/bin/sh\ncase "$1" in\n  get_throttled) echo "throttled=0x50005" ;;\n'
                    '  measure_clock) echo "frequency(48)=1500004000" ;;\nesac\n')
    fake.chmod(0o755)
    zone = tmp_path / "temp"
    zone.write_text("61234\n")
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setattr(bench.sysmon, "THERMAL_ZONE", zone)
    rc, doc = run_bench(tmp_path, "--models", str(tiny_run), "--threads", "1", "--only", "cls-onnx",
                        "--duration", "2s")
    c = doc["cells"][0]
    assert rc == 0 and c["temp_start_c"] == pytest.approx(61.234) and c["temp_end_c"] == pytest.approx(61.234)
    assert c["arm_freq_mhz_end"] == pytest.approx(1500.004) and c["throttled_hex"] == "0x50005"
    flags = c["throttle_flags"]
    assert flags["under_voltage_now"] and flags["throttled_now"] and not flags["freq_capped_now"]
    assert flags["under_voltage_since_boot"] and flags["throttled_since_boot"]
    assert len(c["timeline"]) >= 2 and c["timeline"][0]["t_s"] <= 1.5 and c["timeline"][0]["fps"] > 0
    assert all(p["temp_c"] == pytest.approx(61.234) and p["throttled"] == 0x50005 for p in c["timeline"])
    assert "temperature" not in doc["probes_unavailable"]
    assert (tmp_path / "out" / "timeline-cls-onnx_onnxruntime_t1.png").stat().st_size > 5000
