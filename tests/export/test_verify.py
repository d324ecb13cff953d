"""The export verification report: real toy models through the edge runtime and Ultralytics, real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CctvkitError
from edge.eval import DETECTION_KEYS, PRESENCE_KEYS, load_yolo_folder
from edge.formats.yolo import save_yolo_labels
from edge.manifest import Manifest
from export.calibration import select_calibration_images
from export.onnx_export import export_onnx
from export.onnx_int8 import quantize_onnx_int8
from export.verify import ExportCheckFailed, VerifyParams, check_failed, compare_rows, verify_recorded
from export.verify_data import load_verify_set
from export.verify_report import write_verify_reports
from trainer import pipeline
from trainer.config import PipelineConfig

MODELS = ["detector-onnx-fp32", "detector-onnx-int8", "classifier-onnx-fp32", "classifier-onnx-int8"]


def _make_run(toy: dict[str, Path], run: Path) -> Manifest:
    """A run with a train stage (the toy .pt files) and an export stage (ONNX FP32 + INT8 of both)."""
    m = Manifest.create(run, "toy")
    (run / "train").mkdir(parents=True)
    pts = {}
    for key, name in (("detector", "detector.pt"), ("classifier", "classifier.pt")):
        pts[name] = run / "train" / name
        shutil.copy2(toy[key], pts[name])
    m.record_stage("train", params={}, outputs=pts)
    out = run / "export"
    jobs = [
        ("detector", "detect", 64, toy["detect_yaml"].parent / "images" / "train"),
        ("classifier", "classify", 32, toy["classify_root"] / "train"),
    ]
    outputs = {}
    for tag, task, imgsz, calib_root in jobs:
        fp32 = out / f"{tag}-fp32.onnx"
        spec32 = export_onnx(pts[f"{tag}.pt"], fp32, task=task, imgsz=imgsz)
        int8 = out / f"{tag}-int8.onnx"
        spec8 = quantize_onnx_int8(
            fp32, int8, spec32, select_calibration_images(calib_root, n=32), progress=False
        )
        for prec, spec, path in (("fp32", spec32, fp32), ("int8", spec8, int8)):
            d = spec.to_json()
            d["path"] = f"export/{path.name}"
            m.add_model(f"{tag}-onnx-{prec}", type(spec).from_json(d))
            outputs[path.name] = path
    m.record_stage("export", params={}, outputs=outputs)
    m.save()
    return m


@pytest.fixture(scope="module")
def toy_run(toy_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_run(toy_models, tmp_path_factory.mktemp("verify") / "run").run_dir


@pytest.fixture
def run_copy(toy_run: Path, tmp_path: Path) -> Manifest:
    shutil.copytree(toy_run, tmp_path / "run")
    return Manifest.load(tmp_path / "run")


def _cfg(**export: object) -> PipelineConfig:
    cfg = PipelineConfig()
    cfg.export = cfg.export.model_copy(update={"verify_threads": [1, 2], "verify_timing_frames": 3, **export})
    return cfg


def test_report_has_every_model_with_accuracy_sizes_and_latency(
    toy_run: Path, toy_models: dict[str, Path], tmp_path: Path
) -> None:
    m = Manifest.load(toy_run)
    vset = load_verify_set(
        m, toy_models["detect_yaml"].parent, toy_models["classify_root"] / "val" / "no_person", max_frames=12
    )
    assert len(vset.frames) == 12 and len(vset.negatives) == 6 and vset.has_person.all()
    report = verify_recorded(m, MODELS, vset, VerifyParams(threads=(2, 1), timing_frames=3), progress=False)
    rows = {r["model"]: r for r in report["rows"]}
    assert sorted(rows) == sorted(["pytorch-detector", "pytorch-classifier", *MODELS])
    assert report["schema_version"] == 1 and report["threads"] == [1, 2]
    for r in rows.values():
        assert "error" not in r, r
        assert set(r["latency"]) == {"1", "2"} and all(v["p50_ms"] > 0 for v in r["latency"].values())
        assert r["size_mb"] > 0
        if r["task"] == "detect":
            assert 0 <= r["map50_95"] <= r["map50"] <= 1 and r["eval_frames"] == 12
        else:
            assert 0 <= r["presence_accuracy"] <= 1 and r["eval_frames"] == 18
    assert rows["detector-onnx-int8"]["size_mb"] < rows["detector-onnx-fp32"]["size_mb"]
    # The edge FP32 model and Ultralytics on the .pt see the same pixels: their verdicts agree.
    assert rows["classifier-onnx-fp32"]["delta_vs_pytorch"]["presence_accuracy"] == 0.0
    assert abs(rows["detector-onnx-fp32"]["delta_vs_pytorch"]["map50_95"]) < 1.0
    for name in ("detector-onnx-int8", "classifier-onnx-int8"):
        assert rows[name]["check"]["failed"] is False and "delta_vs_fp32" in rows[name]
        assert set(rows[name]["latency_vs_fp32"]) == {"1", "2"}
    assert report["passed"] and report["data"]["source"] == "labels" and not report["data"]["pseudo_labels"]

    files = write_verify_reports(report, tmp_path)
    again = json.loads(files["verify.json"].read_text())
    assert again["rows"] == json.loads(json.dumps(report["rows"]))
    md = files["verify.md"].read_text()
    assert "## Detector" in md and "## Classifier" in md and "Passed" in md and "PSEUDO" not in md
    for name in rows:
        assert f"| {name} |" in md
    assert md.count("| ok: drop") == 2


def test_forced_failure_fails_after_writing_and_recording_everything(
    run_with_train_stage, toy_models: dict[str, Path], tmp_path: Path
) -> None:
    m = run_with_train_stage(tmp_path / "run", {"detector_imgsz": 64, "classifier_imgsz": 32})
    cfg = _cfg(max_int8_drop=-1.0, labels=str(toy_models["detect_yaml"].parent), verify_frames=8,
               calibration_images=32)
    with pytest.raises(ExportCheckFailed) as err:
        pipeline.run_export(m, cfg, progress=False)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(m.run_dir / "export" / "verify.md"))
    assert (
        "INT8 onnx (detector-onnx-int8) lost" in text
        and "mAP50-95 points against FP32 PyTorch (limit -1.0)" in text
    )
    assert "(and 1 more)" in text and "Percentile" in text and "--max-drop" in text
    again = Manifest.load(m.run_dir)
    entry = again.stage("export")
    assert again.output("export", "verify.json") and again.output("export", "verify.md")
    assert entry["summary"]["verify"]["passed"] is False and len(entry["summary"]["verify"]["failures"]) == 2
    assert sorted(again.models()) == sorted(MODELS)
    # The verification is part of the stage's one record, not an edit after it: its time is in the stage's
    assert entry["seconds"] >= entry["summary"]["verify"]["seconds"]
    assert list(entry["outputs"])[-2:] == ["verify.json", "verify.md"]
    md = (m.run_dir / "export" / "verify.md").read_text()
    assert md.startswith("# Export verification") and md.count("**FAILED**: drop") == 2
    report = json.loads((m.run_dir / "export" / "verify.json").read_text())
    assert [r["model"] for r in report["rows"] if r.get("check", {}).get("failed")] == [
        "detector-onnx-int8",
        "classifier-onnx-int8",
    ]


def test_a_model_the_edge_runtime_cannot_run_fails_the_check(
    run_copy: Manifest, toy_models: dict[str, Path]
) -> None:
    m = run_copy
    (m.run_dir / "export" / "classifier-int8.onnx").write_bytes(b"not a model")
    vset = load_verify_set(m, toy_models["detect_yaml"].parent, None, max_frames=4)
    report = verify_recorded(m, ["classifier-onnx-fp32", "classifier-onnx-int8"], vset,
                             VerifyParams(threads=(1, 2), timing_frames=3), progress=False)
    files = write_verify_reports(report, m.run_dir / "export")
    with pytest.raises(
        ExportCheckFailed, match=r"classifier-onnx-int8 does not run in the edge runtime: .*sha256"
    ):
        raise check_failed(report, files["verify.md"])
    assert "**FAILED** (does not run)" in (m.run_dir / "export" / "verify.md").read_text()


def _row(model: str, task: str, fmt: str, prec: str, value: float) -> dict:
    key = {"detect": "map50_95", "classify": "presence_accuracy"}[task]
    extra = (
        {"map50": value, "box_precision": 0.5, "box_recall": 0.5, "box_f1": 0.5, "presence_f1": 0.5}
        if task == "detect"
        else {"presence_f1": 0.5}
    )
    return {
        "model": model,
        "task": task,
        "format": fmt,
        "precision": prec,
        key: value,
        **extra,
        "latency": {"1": {"p50_ms": 10.0 if prec == "fp32" else 6.0}},
    }


def test_drop_rules_on_hand_built_rows() -> None:
    chance = {"detect": 0.0, "classify": 0.5}

    def check(ref: float, int8: float, task: str = "detect", limit: float = 2.0) -> list[str]:
        rows = [
            _row("ref", task, "pytorch", "fp32", ref),
            _row("m-fp32", task, "onnx", "fp32", ref),
            _row("m-int8", task, "onnx", "int8", int8),
        ]
        failures = compare_rows(rows, chance, limit)
        assert rows[2]["latency_vs_fp32"] == {"1": 0.6}
        return failures

    assert check(0.50, 0.47) == [
        "INT8 onnx (m-int8) lost 3.0 mAP50-95 points against FP32 PyTorch (limit 2.0)"
    ]
    assert check(0.50, 0.485) == []
    assert check(0.50, 0.55) == []  # a gain
    assert check(0.01, 0.0) == []  # a near-zero reference cannot lose 2 points
    assert check(0.01, 0.01, limit=-1.0) != []  # ... but the check still runs
    assert check(0.95, 0.90, "classify") == [
        "INT8 onnx (m-int8) lost 5.0 top-1 accuracy points against FP32 PyTorch (limit 2.0)"
    ]
    assert check(0.515, 0.40, "classify") == []  # 1.5 points above chance: at most 1.5 to lose
    assert check(0.60, 0.40, "classify") != []  # 10 points of skill, all lost
    # LiteRT's full-integer variant is reported and flagged, never failed; its format's int8 still is
    rows = [
        _row("ref", "detect", "pytorch", "fp32", 0.50),
        _row("t-fp32", "detect", "tflite", "fp32", 0.50),
        _row("t-int8", "detect", "tflite", "int8", 0.49),
        {**_row("t-fullint8", "detect", "tflite", "int8", 0.38), "integer_io": True},
    ]
    assert compare_rows(rows, chance, 2.0) == []
    assert rows[3]["check"]["beyond_limit"] and not rows[3]["check"]["failed"]
    assert not rows[3]["check"]["gated"] and rows[2]["check"]["gated"]
    rows[2]["map50_95"] = 0.45
    assert compare_rows(rows, chance, 2.0) == [
        "INT8 tflite (t-int8) lost 5.0 mAP50-95 points against FP32 PyTorch (limit 2.0)"
    ]
    broken = [
        _row("ref", "detect", "pytorch", "fp32", 0.5),
        {"model": "x-int8", "task": "detect", "format": "onnx", "precision": "int8", "error": "bad file"},
    ]
    assert compare_rows(broken, chance, 2.0) == ["x-int8 does not run in the edge runtime: bad file"]


def _yolo_folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"f{i}.jpg"), np.full((48, 64, 3), 90, np.uint8))
        save_yolo_labels(
            root / "labels" / f"f{i}.txt", np.array([0]), np.array([[4, 4, 20, 40]], np.float32), 64, 48
        )
    return root


def test_bad_labelled_folders_are_one_line_errors(tmp_path: Path) -> None:
    ok = _yolo_folder(tmp_path / "ok")
    d = load_yolo_folder(ok, max_frames=10)
    assert len(d.frames) == 3 and [len(c) for c, _ in d.gts] == [1, 1, 1] and d.summary()["boxes"] == 3
    np.testing.assert_allclose(d.gts[0][1], [[4, 4, 20, 40]], atol=0.01)

    orphan = _yolo_folder(tmp_path / "orphan")
    (orphan / "labels" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(CctvkitError, match=r"orphan/labels/gone.txt: label file has no matching image"):
        load_yolo_folder(orphan, max_frames=10)
    broken = _yolo_folder(tmp_path / "broken")
    (broken / "images" / "f1.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(CctvkitError, match=r"broken/images/f1.jpg: image does not decode"):
        load_yolo_folder(broken, max_frames=10)
    bad_line = _yolo_folder(tmp_path / "badline")
    (bad_line / "labels" / "f2.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(CctvkitError, match=r"badline/labels/f2.txt"):
        load_yolo_folder(bad_line, max_frames=10)
    unlabelled = _yolo_folder(tmp_path / "unlabelled")
    shutil.rmtree(unlabelled / "labels")
    with pytest.raises(CctvkitError, match=r"none of the 3 images has a label file"):
        load_yolo_folder(unlabelled, max_frames=10)
    with pytest.raises(CctvkitError, match=r"labelled folder not found"):
        load_yolo_folder(tmp_path / "missing", max_frames=10)
    (ok / "data.yaml").write_text("names: {0: car}\n")
    with pytest.raises(CctvkitError, match=r"data.yaml: data.yaml has no 'person' class"):
        load_yolo_folder(ok, max_frames=10)
    m = Manifest.create(tmp_path / "run", "r")
    with pytest.raises(CctvkitError, match=r"negatives folder not found"):
        load_verify_set(m, _yolo_folder(tmp_path / "ok2"), tmp_path / "nothing")
    with pytest.raises(CctvkitError, match=r"no held-out frames to verify .* -- pass --labels DIR"):
        load_verify_set(m)


def test_default_sets_holdout_with_painted_negatives_and_import_test_split(tmp_path: Path) -> None:
    run = tmp_path / "run"
    hold = _yolo_folder(run / "scene" / "holdout", n=4)
    plate = np.full((48, 64, 3), 200, np.uint8)
    cv2.imwrite(str(run / "scene" / "plate.png"), plate)
    m = Manifest.create(run, "r")
    m.record_stage("scene", params={}, outputs={"holdout": hold, "plate.png": run / "scene" / "plate.png"})
    vset = load_verify_set(m, max_frames=3)
    assert vset.info["source"] == "holdout" and vset.info["pseudo_labels"] and len(vset.frames) == 3
    assert len(vset.negatives) == 3 and (vset.negatives[0][10, 10] == 200).all()  # the person is painted over
    assert list(vset.presence_truth) == [True] * 3 + [False] * 3

    m.record_stage("compose", params={}, outputs={"holdout": _yolo_folder(run / "compose" / "holdout", n=2)})
    vset = load_verify_set(m)
    assert vset.info["source"] == "labels" and not vset.info["pseudo_labels"] and len(vset.frames) == 2
    assert vset.negatives == [] and vset.info["negatives"]["source"] == "none"


def test_cli_export_options_reach_the_config() -> None:
    from trainer.cli import _apply_export_options, _config, build_parser

    args = build_parser().parse_args(
        ["export", "--run", "r", "--labels", "L", "--negatives", "N", "--max-drop", "-1"]
    )
    cfg = _config(args)
    _apply_export_options(cfg, args)
    assert (cfg.export.labels, cfg.export.negatives, cfg.export.max_int8_drop) == ("L", "N", -1.0)
    args = build_parser().parse_args(["export", "--run", "r", "--quick"])
    cfg = _config(args)
    _apply_export_options(cfg, args)
    assert cfg.export.labels is None and cfg.export.max_int8_drop == 2.0 and cfg.export.verify_threads == [1]


def test_thermal_harbour_folder_loads_with_its_backgrounds() -> None:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "thermal-harbour"
    if not root.is_dir():
        pytest.skip("needs ../shared/data")
    m = Manifest.create(root, "unused")  # never saved: only the user folders are read
    vset = load_verify_set(m, root, root / "backgrounds", max_frames=20)
    assert len(vset.frames) == 20 and len(vset.negatives) == 20 and vset.info["images_in_folder"] > 2000
    assert vset.summary()["boxes"] > 20 and vset.frames[0].shape == (288, 384, 3)


def test_export_verification_and_bench_run_give_one_model_the_same_scores(
    toy_run: Path, toy_models: dict[str, Path], tmp_path: Path
) -> None:
    """One evaluation core: the same model on the same frames scores identically in both tools."""
    from bench.cli import main as bench_main
    from bench.schema import load_results

    labels = toy_models["detect_yaml"].parent
    negatives = toy_models["classify_root"] / "val" / "no_person"
    m = Manifest.load(toy_run)
    vset = load_verify_set(m, labels, negatives, max_frames=10)
    report = verify_recorded(m, ["detector-onnx-fp32", "classifier-onnx-fp32"], vset,
                             VerifyParams(threads=(1,), timing_frames=2), progress=False)
    rows = {r["model"]: r for r in report["rows"]}
    rc = bench_main(["run", "--models", str(toy_run), "--only", "detector-onnx-fp32,classifier-onnx-fp32",
                     "--labels", str(labels), "--negatives", str(negatives), "--max-frames", "10",
                     "--threads", "1", "--frames", "2", "--no-progress", "--no-plots", "--out", str(tmp_path)])
    cells = {c["model"]: c for c in load_results(tmp_path)["cells"]}
    assert rc == 0
    for key in (*DETECTION_KEYS, *PRESENCE_KEYS, "eval_frames", "n_gt"):
        assert cells["detector-onnx-fp32"][key] == rows["detector-onnx-fp32"][key], key
    for key in (*PRESENCE_KEYS, "eval_frames"):
        assert cells["classifier-onnx-fp32"][key] == rows["classifier-onnx-fp32"][key], key
    assert rows["detector-onnx-fp32"]["eval_frames"] == 10 and rows["detector-onnx-fp32"]["n_gt"] > 0


def test_verify_params_come_from_the_export_params_and_check_threads_at_once() -> None:
    from export.params import ExportParams

    p = ExportParams(verify_threads=[2, 1], verify_timing_frames=5, max_int8_drop=1.5)
    assert VerifyParams.of(p, conf=0.3, iou=0.5) == VerifyParams(threads=(2, 1), timing_frames=5, conf=0.3,
                                                                iou=0.5, max_drop=1.5)
    with pytest.raises(CctvkitError, match=r"verify threads \[0\] must be >= 1 -- e.g. export.verify_threads"):
        VerifyParams.of(ExportParams(verify_threads=[0]), conf=0.25, iou=0.45)  # before any export starts
