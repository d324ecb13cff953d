"""LiteRT export (FP32, FP16 weights, INT8, full-integer INT8) of the toy YOLO models, run through the edge
runtime and compared with the ONNX FP32 export of the same .pt.

The 1-epoch toy detector is untrained: its class scores stay near 0.01 while its box channels span
several image sizes, so the INT8 checks compare raw head outputs against the model's own output
quantisation step rather than counting detections (the demo run measures mAP on a trained model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.backends import spec_from_tflite
from edge.backends.litert import LiteRTBackend
from edge.detect.decode import dequantize
from edge.detect.preprocess import prepare_classification, prepare_detection
from edge.detector import Classifier, Detector
from edge.errors import CctvkitError
from edge.formats.yolo import list_images
from export.calibration import select_calibration_images
from export.litert_export import PRECISIONS, export_litert
from export.ncnn_export import cosine
from export.onnx_export import export_onnx

pytestmark = pytest.mark.slow
pytest.importorskip("litert_torch", reason="the export-litert extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
ANCHORS_64 = 8 * 8 + 4 * 4 + 2 * 2


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def det(toy_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("litert-det")
    calib = select_calibration_images(toy_models["detect_yaml"].parent / "images" / "train", n=32)
    made = export_litert(
        toy_models["detector"], out, task="detect", imgsz=64, calib_images=calib, name_prefix="detector"
    )
    onnx_dir = tmp_path_factory.mktemp("litert-det-onnx")
    onnx = export_onnx(toy_models["detector"], onnx_dir / "d.onnx", task="detect", imgsz=64)
    frames = [cv2.imread(str(p)) for p in list_images(toy_models["detect_yaml"].parent / "images" / "val")]
    return {"out": out, "made": made, "onnx": onnx, "onnx_path": onnx_dir / "d.onnx", "frames": frames}


def test_detector_files_and_specs(det: dict) -> None:
    out, made = det["out"], det["made"]
    assert [p for p, _, _ in made] == list(PRECISIONS) == ["fp32", "fp16", "int8", "fullint8"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"detector-{p}.tflite" for p in PRECISIONS)
    specs = {p: s for p, s, _ in made}
    for p, spec, paths in made:
        assert paths == [out / f"detector-{p}.tflite"] and spec.path == paths[0].name
        assert (spec.task, spec.format, spec.layout, spec.decoding) == ("detect", "tflite", "NHWC", "yolov8")
        assert spec.imgsz == (64, 64) and spec.class_names == ["person"] and spec.person_class == 0
        assert spec.boxes_normalized is True  # decided by comparing the FP32 output with PyTorch's
        assert spec.sha256 == ""  # the manifest hashes the file it records
        assert spec.notes["source"] == "detector.pt" and spec.notes["rel_err_vs_pytorch"] < 1e-3
        # what the file itself says (interpreter + the Ultralytics metadata appended to every variant)
        bare = spec_from_tflite(paths[0])
        assert (bare.input_dtype, bare.input_quant, bare.output_quant, bare.layout, bare.class_names) == (
            spec.input_dtype, spec.input_quant, spec.output_quant, spec.layout, spec.class_names
        )  # fmt: skip
    assert [specs[p].precision for p in PRECISIONS] == ["fp32", "fp16", "int8", "int8"]
    assert [specs[p].input_dtype for p in PRECISIONS] == ["float32", "float32", "float32", "int8"]
    assert specs["int8"].input_quant is None and specs["int8"].output_quant is None
    q_in, q_out = specs["fullint8"].input_quant, specs["fullint8"].output_quant
    assert q_in is not None and q_in.zero_point == -128 and q_in.scale == pytest.approx(1 / 255, rel=1e-6)
    assert q_out is not None and 0 < q_out.scale < 0.1
    for p in ("int8", "fullint8"):
        notes = specs[p].notes
        assert notes["calibration_images"] == 32 and "min-max" in notes["calibration_method"]
        assert 0.9 < notes["cosine_vs_fp32_min"] <= 1.0
    size = {p: (out / f"detector-{p}.tflite").stat().st_size for p in PRECISIONS}
    assert size["fp16"] < 0.6 * size["fp32"] and size["fullint8"] < 0.35 * size["fp32"]
    assert size["fullint8"] < size["int8"] < 0.6 * size["fp32"]  # "conv" scheme: the detect head stays float
    assert (specs["int8"].notes["int8_scheme"], specs["fullint8"].notes["int8_scheme"]) == ("conv", "all")


def _raw(det: dict, precision: str, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LiteRT head with boxes back in input pixels, ONNX head) for one frame."""
    spec = next(s for p, s, _ in det["made"] if p == precision)
    backend = LiteRTBackend(det["out"] / spec.path, spec, threads=1)
    y = dequantize(backend.run(prepare_detection(frame, spec)[0])[0], spec.output_quant)
    y = y.astype(np.float32).copy()
    y[:, :4] *= 64.0
    sess = ort.InferenceSession(str(det["onnx_path"]), providers=["CPUExecutionProvider"])
    y_onnx = sess.run(None, {sess.get_inputs()[0].name: prepare_detection(frame, det["onnx"])[0]})[0]
    assert y.shape == y_onnx.shape == (1, 5, ANCHORS_64)
    return y, y_onnx


def test_float_variants_match_onnx(det: dict) -> None:
    for frame in det["frames"][:4]:
        y32, ref = _raw(det, "fp32", frame)
        # Same float graph; only the kernels' summation order differs (XNNPACK vs ONNX Runtime).
        assert np.abs(y32[:, :4] - ref[:, :4]).max() < 1e-2  # pixels
        assert np.abs(y32[:, 4:] - ref[:, 4:]).max() < 1e-5
        y16, _ = _raw(det, "fp16", frame)
        # float16 weights carry 11 significant bits: about 1e-3 relative error per weight.
        assert np.abs(y16[:, :4] - ref[:, :4]).max() < 0.1
        assert np.abs(y16[:, 4:] - ref[:, 4:]).max() < 1e-3
    # Decoded through the edge Detector: the same boxes and scores as the ONNX model (very low conf: the
    # untrained toy's scores peak near 0.01).
    onnx_det = Detector(det["onnx"], det["onnx_path"], backend="onnxruntime", threads=1, conf=0.002)
    spec32 = det["made"][0][1]
    lite = Detector(spec32, det["out"] / spec32.path, backend="litert", threads=1, conf=0.002)
    found = 0
    for frame in det["frames"]:
        a, b = lite.detect(frame), onnx_det.detect(frame)
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)  # frame pixels (96 px frames)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        found += len(a)
    assert found > 0


def test_int8_variants_follow_onnx_within_the_output_step(det: dict) -> None:
    specs = {p: s for p, s, _ in det["made"]}
    step = specs["fullint8"].output_quant.scale  # both int8 variants share one calibration
    for frame in det["frames"][:4]:
        ref = _raw(det, "fp32", frame)[1]
        for p in ("int8", "fullint8"):
            y = _raw(det, p, frame)[0]
            assert cosine(y[:, :4], ref[:, :4]) > 0.99
            # The head output sits on one int8 grid (rounding <= step/2) on top of upstream activation
            # rounding: 2 steps is 4x the final rounding alone; boxes are in pixels (x 64 imgsz).
            assert np.abs(y[:, :4] - ref[:, :4]).max() < 2 * step * 64
            assert np.abs(y[:, 4:] - ref[:, 4:]).max() < 2 * step
            assert not np.array_equal(y, ref)
    full = Detector(specs["fullint8"], det["out"] / specs["fullint8"].path, threads=1, conf=0.001)
    assert full.backend.input_dtype == np.int8
    x = prepare_detection(det["frames"][0], specs["fullint8"])[0]
    assert x.dtype == np.int8 and x.shape == (1, 64, 64, 3)
    # the pinned input scale: a pixel value p goes in as p - 128, exactly
    rgb = cv2.cvtColor(cv2.resize(det["frames"][0], (64, 64)), cv2.COLOR_BGR2RGB)
    spec_sq = specs["fullint8"]
    from edge.detect.preprocess import to_tensor

    np.testing.assert_array_equal(to_tensor(rgb, spec_sq)[0].astype(np.int16), rgb.astype(np.int16) - 128)
    dets = full.detect(det["frames"][0])
    assert np.isfinite(dets.xyxy).all()


def test_classifier_export_runs_on_the_edge(toy_models: dict[str, Path], tmp_path: Path) -> None:
    calib = select_calibration_images(toy_models["classify_root"] / "train", n=32)
    made = export_litert(
        toy_models["classifier"], tmp_path / "m", task="classify", imgsz=32, calib_images=calib,
        name_prefix="classifier",
    )  # fmt: skip
    onnx = export_onnx(toy_models["classifier"], tmp_path / "c.onnx", task="classify", imgsz=32)
    ref_cls = Classifier(onnx, tmp_path / "c.onnx", threads=1)
    frames = [cv2.imread(str(p)) for p in list_images(toy_models["classify_root"] / "val")]
    specs = {p: s for p, s, _ in made}
    assert specs["fullint8"].input_dtype == "int8" and specs["fullint8"].output_quant is not None
    for p, spec, paths in made:
        assert (spec.task, spec.decoding, spec.layout, spec.boxes_normalized) == ("classify", "probs", "NHWC", False)
        assert spec.class_names == onnx.class_names and spec.class_names[spec.person_class] == "person"
        cls = Classifier(spec, paths[0], threads=1)
        step = spec.output_quant.scale if spec.output_quant else specs["fullint8"].output_quant.scale
        # float: same graph (1e-5); int8: probabilities on one int8 grid of 1/256 plus upstream rounding
        tol = 1e-5 if p == "fp32" else 1e-3 if p == "fp16" else 4 * step
        for frame in frames:
            a, b = cls.classify(frame).probs, ref_cls.classify(frame).probs
            assert np.abs(a - b).max() < tol, (p, a, b)
    x = prepare_classification(frames[0], specs["fullint8"])
    assert x.dtype == np.int8 and x.shape == (1, 32, 32, 3)
    assert specs["int8"].notes["int8_scheme"] == "all"  # no detect head to keep float
    assert _leftovers(tmp_path / "m") == []
    # FP32 alone needs no calibration images (the PyTorch check then runs on a random input)
    (only,) = export_litert(
        toy_models["classifier"], tmp_path / "f", task="classify", imgsz=32, calib_images=[],
        precisions=["fp32"], name_prefix="c",
    )  # fmt: skip
    assert only[0] == "fp32" and [p.name for p in (tmp_path / "f").iterdir()] == ["c-fp32.tflite"]
    assert (tmp_path / "f" / "c-fp32.tflite").stat().st_mode & 0o777 == 0o644


def test_bad_input_is_one_line_and_writes_nothing(
    toy_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = toy_models["detect_yaml"].parent / "images" / "train"
    calib = select_calibration_images(train, n=32)
    out = tmp_path / "o"
    kw = {"task": "detect", "imgsz": 64, "name_prefix": "d"}
    with pytest.raises(CctvkitError, match=r"only 31 calibration images for LiteRT INT8 -- pass at least 32"):
        export_litert(toy_models["detector"], out, calib_images=calib[:31], **kw)
    with pytest.raises(CctvkitError, match=r"unknown LiteRT precision\(s\) \['int4'\]"):
        export_litert(toy_models["detector"], out, calib_images=calib, precisions=["int4"], **kw)
    with pytest.raises(CctvkitError, match=r"unknown LiteRT int8 scheme 'fast' -- choose one of: conv, head-float, all"):
        export_litert(toy_models["detector"], out, calib_images=calib, int8_scheme="fast", **kw)
    with pytest.raises(CctvkitError, match="weights are a 'detect' model, expected 'classify'"):
        export_litert(toy_models["detector"], out, calib_images=calib, **{**kw, "task": "classify"})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CctvkitError, match=rf"^{corrupt}: cannot load the weights"):
        export_litert(corrupt, out, calib_images=calib, **kw)
    with monkeypatch.context() as m:  # the optional extra is missing: None in sys.modules fails the import
        m.setitem(sys.modules, "litert_torch", None)
        with pytest.raises(CctvkitError) as e:
            export_litert(toy_models["detector"], out, calib_images=calib, **kw)
    msg = str(e.value)
    assert "\n" not in msg and "litert-torch is not installed" in msg
    assert msg.endswith("-- install the export-litert extra: pip install 'cctvkit[export-litert]'")
    assert not out.exists()

    # A calibration frame that cannot be read fails after the conversion: nothing may stay behind.
    bad = tmp_path / "frames"
    bad.mkdir()
    for p in calib[:31]:
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "zz_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    with pytest.raises(CctvkitError, match=r"zz_broken.jpg: cannot read calibration image"):
        export_litert(
            toy_models["detector"], out, calib_images=sorted(bad.iterdir()), precisions=["fp32", "int8"], **kw
        )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


AUDIT = r"""
import json, socket, sys
attempts = []
EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
          "socket.sendto", "urllib.Request"}
def hook(event, args):
    if event in EVENTS or (event == "subprocess.Popen" and ("pip" in repr(args) or "install" in repr(args))):
        attempts.append([event, repr(args)[:200]])
sys.addaudithook(hook)
from pathlib import Path
from export.calibration import select_calibration_images
from export.litert_export import export_litert
pt, calib_dir, out = (Path(a) for a in sys.argv[1:4])
made = export_litert(pt, out, task="detect", imgsz=64, name_prefix="d", precisions=["fp32", "fullint8"],
                     calib_images=select_calibration_images(calib_dir, n=32))
work = list(attempts)
try:  # canary: proves the hook sees a lookup (localhost needs no network)
    socket.getaddrinfo("localhost", 80)
except OSError:
    pass
print("RESULT " + json.dumps({"attempts": work, "canary": len(attempts) > len(work),
                              "outputs": sorted(p.name for p in out.iterdir())}))
"""


def test_litert_export_makes_no_network_attempts_and_runs_no_pip(toy_models: dict[str, Path], tmp_path: Path) -> None:
    """In a fresh Python (audit hooks cannot be removed) with an empty HOME and cwd: no socket use and no
    pip subprocess (Ultralytics' check_requirements would run pip install through one)."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "CCTVKIT_", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), MPLCONFIGDIR=str(tmp_path / "mpl"))
    calib_dir = toy_models["detect_yaml"].parent / "images" / "train"
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT, str(toy_models["detector"]), str(calib_dir), str(tmp_path / "out")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])
    assert result["canary"], "the audit hook did not see a lookup: the check itself is broken"
    assert result["attempts"] == []
    assert result["outputs"] == ["d-fp32.tflite", "d-fullint8.tflite"]
    assert list(cwd.iterdir()) == [] and not (home / ".config" / "Ultralytics").exists()
