"""Which ONNX INT8 settings keep a detector's accuracy: one FP32 detector of a run quantised several ways
(export/onnx_int8.py), each scored by the one evaluation core on the same labelled frames.

    python benchmarks/int8_variants.py --run runs/exp/arms/teacher --labels runs/exp/test --out /tmp/int8

Variants (--variants a,b; default all): `default` is the export default (U8, MinMax, 64 composed images,
every op ORT has an integer kernel for, the head's box branch float); each other one changes one or two
things: `percentile` / `entropy` calibration, `calib300` (300 images), `real-calib` (64 of the scene's own
unlabelled real frames instead of composed images), `full-range` (8-bit weights, reduce_range off),
`attention` (YOLO11's C2PSA attention float too), `percentile-attention`, `conv-only` (Conv/MatMul only),
`head` (every output conv float). Prints and writes a JSON table: mAP50 / mAP50-95 and the change against
FP32 in points. Labels named in the output; no timing (a speed claim belongs in a benchmark run side by
side: benchmarks/onnx_int8_speed.py).
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
from edge.stages import DataSetOut, SceneOut
from export.calibration import select_calibration_images
from export.onnx_int8 import CONV_OP_TYPES, DEFAULT_OP_TYPES, box_nodes, quantize_onnx_int8


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
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    m = Manifest.load(args.run)
    spec = m.models()[args.model]
    fp32 = m.model_path(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_yolo_folder(args.labels, max_frames=args.frames)
    root = m.output("compose", DataSetOut.detect.name) / "images/train"
    calib64, calib300 = select_calibration_images(root, n=64), select_calibration_images(root, n=300)
    # The scene's own real frames (unlabelled training footage): the distribution the device sees.
    real64 = select_calibration_images(m.output("scene", SceneOut.frames.name) / "images", n=64)
    attn = attention_nodes(fp32)
    box = box_nodes(fp32)
    variants: dict[str, dict[str, Any]] = {
        "default": {},  # U8, MinMax, 64 composed images, box branch float
        "percentile": {"method": "Percentile"},
        "entropy": {"method": "Entropy"},
        "calib300": {"calib": calib300},
        "real-calib": {"calib": real64},
        "full-range": {"reduce_range": False},
        "attention": {"keep_fp32": [*attn, *box]},
        "percentile-attention": {"method": "Percentile", "keep_fp32": [*attn, *box]},
        "conv-only": {"op_types_to_quantize": CONV_OP_TYPES},
        "head": {"keep_fp32": "head"},
    }
    chosen = args.variants.split(",") if args.variants else list(variants)
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        ap.error(f"unknown variants {unknown}; valid: {', '.join(variants)}")

    def score(path: Path, s: Any) -> dict[str, Any]:
        det = Detector(s, path, threads=2, conf=0.25, classes=[s.person_class])
        r = model_accuracy(det, data, conf=0.25)
        return {"map50": round(r["map50"], 4), "map50_95": round(r["map50_95"], 4)}

    base = score(fp32, spec)
    rows: dict[str, Any] = {"fp32": base}
    print(f"labels: {args.labels} ({len(data.frames)} frames); fp32 {base}", flush=True)
    for name in chosen:
        v = dict(variants[name])
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


if __name__ == "__main__":
    sys.exit(main())
