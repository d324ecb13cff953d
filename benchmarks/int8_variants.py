"""Which ONNX INT8 settings keep a detector's accuracy: one FP32 detector of a run quantised several ways
(export/onnx_int8.py), each scored by the one evaluation core on the same labelled frames.

    python benchmarks/int8_variants.py --run runs/exp/arms/teacher --labels runs/exp/test --out /tmp/int8

Variants: the export default (U8, MinMax, every op ORT has an integer kernel for, DFL conv float), then one
change each: Percentile / Entropy calibration, 300 calibration images, the attention block (YOLO11's C2PSA:
its MatMul and Softmax) kept float, Conv/MatMul only, the whole head float. Prints and writes a JSON table:
mAP50 / mAP50-95 and the change against FP32 in points. Labels named in the output; no timing (a speed claim
belongs in a benchmark run side by side: benchmarks/onnx_int8_speed.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.detector import Detector
from edge.eval.accuracy import model_accuracy
from edge.eval.labelled import load_yolo_folder
from edge.manifest import Manifest
from edge.stages import DataSetOut
from export.calibration import select_calibration_images
from export.onnx_int8 import CONV_OP_TYPES, DEFAULT_OP_TYPES, quantize_onnx_int8


def attention_nodes(path: Path) -> list[str]:
    """The nodes of YOLO11's C2PSA attention (MatMul, Softmax and what sits between them)."""
    import onnx

    g = onnx.load(str(path)).graph
    return [n.name for n in g.node if "/attn/" in n.name and n.op_type in ("MatMul", "Softmax", "Mul", "Add")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--labels", required=True, help="YOLO images/ + labels/ (real labels: name them so)")
    ap.add_argument("--model", default="detector-onnx-fp32")
    ap.add_argument("--frames", type=int, default=0, help="at most this many labelled frames (0: all)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    m = Manifest.load(args.run)
    spec = m.models()[args.model]
    fp32 = m.model_path(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_yolo_folder(args.labels, max_frames=args.frames)
    root = m.output("compose", DataSetOut.detect.name) / "images/train"
    calib64, calib300 = select_calibration_images(root, n=64), select_calibration_images(root, n=300)
    attn = attention_nodes(fp32)
    variants: dict[str, dict[str, Any]] = {
        "default (U8 MinMax, 64 images)": {},
        "Percentile": {"method": "Percentile"},
        "Entropy": {"method": "Entropy"},
        "300 calibration images": {"calib": calib300},
        "attention float": {"keep_fp32": [*attn, *_dfl(fp32)]},
        "Conv/MatMul only": {"op_types_to_quantize": CONV_OP_TYPES},
        "head float": {"keep_fp32": "head"},
    }

    def score(path: Path, s: Any) -> dict[str, Any]:
        det = Detector(s, path, threads=2, conf=0.25, classes=[s.person_class])
        r = model_accuracy(det, data, conf=0.25)
        return {"map50": round(r["map50"], 4), "map50_95": round(r["map50_95"], 4)}

    base = score(fp32, spec)
    rows: dict[str, Any] = {"fp32": base}
    print(f"labels: {args.labels} ({len(data.frames)} frames); fp32 {base}", flush=True)
    for name, v in variants.items():
        calib = v.pop("calib", calib64)
        path = out / f"{len(rows):02d}.onnx"
        s8 = quantize_onnx_int8(fp32, path, spec, calib, progress=False,
                                op_types_to_quantize=v.pop("op_types_to_quantize", DEFAULT_OP_TYPES), **v)
        r = score(path, s8)
        r["drop_points_map50_95"] = round(100 * (base["map50_95"] - r["map50_95"]), 2)
        rows[name] = r
        print(f"{name}: {r}", flush=True)
    (out / "int8_variants.json").write_text(json.dumps({"labels": str(args.labels), "rows": rows,
                                                        "attention_nodes": attn}, indent=1))
    return 0


def _dfl(path: Path) -> list[str]:
    from export.onnx_int8 import dfl_nodes

    return dfl_nodes(path)


if __name__ == "__main__":
    sys.exit(main())
