"""Per-frame person counts of every model, for benchmarks/pi_check.sh (x86 and the emulated aarch64 Pi).

`bench run` reports mAP50 over a set but not what each frame gave; the comparison also needs per-frame
person counts (detectors) and person decisions (classifiers). This runs each model of --models (a run's
manifest and/or bare .onnx/.tflite files, as `bench run` takes them) on every image of --images in name
order and writes one JSON file: the host, what the CPU and the runtimes say about the paths they take,
and per model and frame {count, top} or {person, prob}.

    python benchmarks/pi_counts.py --models runs/demo extra.tflite --metadata meta.yaml \
        --images labels/images --threads 1 --out counts.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import cv2

from bench.kernels import cpu_features, runtime_kernels
from bench.matrix import load_models
from bench.schema import host_info
from edge.backends import available_backends
from edge.detector import Classifier, Detector


def runtime_paths() -> dict[str, Any]:
    """The backends that load here, their versions and what each says about its kernels (bench.kernels)."""
    return {"backends": {k: v or "ok" for k, v in available_backends().items()},
            "versions": host_info()["runtimes"], **runtime_kernels()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--metadata")
    ap.add_argument("--images", required=True, help="folder of images, run in name order")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    frames = [(p.name, cv2.imread(str(p))) for p in images]
    entries, _ = load_models(args.models, args.metadata)
    result: dict[str, Any] = {"machine": platform.machine(), "python": platform.python_version(),
                              "cpu": cpu_features(), "runtimes": runtime_paths(), "models": {}}
    for e in entries:
        spec, path = e.spec, e.resolve()
        model: Detector | Classifier
        if spec.task == "detect":
            model = Detector(spec, path, threads=args.threads, conf=args.conf, classes=[spec.person_class])
        else:
            model = Classifier(spec, path, threads=args.threads)
        per: dict[str, Any] = {}
        for name, img in frames:
            if isinstance(model, Detector):
                d = model.detect(img)
                per[name] = {"count": len(d), "top": round(float(d.scores.max()), 4) if len(d) else 0.0}
            else:
                c = model.classify(img)
                per[name] = {"person": bool(c.is_person), "prob": round(float(c.person_prob), 4)}
        result["models"][e.name] = {"task": spec.task, "format": spec.format, "precision": spec.precision,
                                    "backend": type(model.backend).__name__, "frames": per}
        print(f"{e.name}: {len(per)} frames", file=sys.stderr)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
