"""Teacher mode's promise, measured side by side in one `bench run`: the student at its small input against
the teacher at its own, same runtime and threads, on the same real labelled frames.

    .venv/bin/python benchmarks/teacher_vs_student.py --run runs/exp/arms/teacher \\
        --teacher ../shared/data/models/coco-yolo11n-640-int8w.tflite \\
        --metadata ../shared/data/models/coco-names-metadata.yaml --labels runs/exp/test --out /tmp/tvs

Models in the one bench run: the student's exports in the run (ONNX FP32 / INT8), the teacher file itself
(LiteRT), and, when the teacher is a YOLO11n .tflite, the teacher's weights exported to ONNX at the
teacher's input size (trainer/relabel/warmstart.py): the like-for-like ONNX Runtime comparison. Writes
bench run's results.json / report.md / plots into --out and prints the student/teacher FPS ratio per runtime.
Goal (issue 11): student mAP50 >= teacher's, at >= 4x the teacher's end-to-end FPS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def teacher_as_onnx(teacher: Path, metadata: Path | None, out: Path) -> Path:
    from export.onnx_export import export_onnx
    from trainer.relabel.teacher import teacher_spec
    from trainer.relabel.warmstart import student_from_teacher

    spec = teacher_spec(teacher, metadata)
    pt = out / "teacher-weights.pt"
    student_from_teacher(teacher, spec.person_class, len(spec.class_names), spec.imgsz, pt)
    onnx = out / f"teacher-onnx-{spec.imgsz[0]}.onnx"
    export_onnx(pt, onnx, task="detect", imgsz=spec.imgsz)
    return onnx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the student's run directory (trainer export done)")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--metadata")
    ap.add_argument("--labels", required=True, help="real labelled frames (YOLO folder) to score on")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--max-frames", type=int, default=240)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = Path(args.teacher)
    models = [str(Path(args.run) / "manifest.json"), str(teacher)]
    if teacher.suffix == ".tflite":
        models.append(str(teacher_as_onnx(teacher, Path(args.metadata) if args.metadata else None, out)))
    from bench.cli import main as bench

    rc = bench(["run", "--models", *models, "--labels", args.labels, "--threads", args.threads,
                "--frames", str(args.frames), "--max-frames", str(args.max_frames), "--out", str(out / "bench"),
                "--only", f"detector-onnx-fp32,detector-onnx-int8,{teacher.stem},{Path(models[-1]).stem}",
                "--no-progress", *(["--metadata", args.metadata] if args.metadata else [])])
    if rc:
        return rc
    doc = json.loads((out / "bench" / "results.json").read_text())
    cells = [c for c in doc["cells"] if c.get("status") == "ok"]
    for c in cells:
        print(f"{c['model']:<34} {c['backend']:<12} {c['imgsz'][0]:>4} px  {c['threads']} thr  FPS e2e "
              f"{c['fps_e2e']:7.1f}  mAP50 {c['map50']:.3f}  mAP50-95 {c['map50_95']:.3f}")
    by = {(c["model"], c["threads"]): c for c in cells}
    for threads in sorted({c["threads"] for c in cells}):
        for student in ("detector-onnx-fp32", "detector-onnx-int8"):
            for ref in (teacher.stem, Path(models[-1]).stem):
                a, b = by.get((student, threads)), by.get((ref, threads))
                if a and b and ref != student:
                    print(f"{student} / {ref} ({threads} threads): {a['fps_e2e'] / b['fps_e2e']:.2f}x FPS, "
                          f"mAP50 {a['map50']:.3f} vs {b['map50']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
