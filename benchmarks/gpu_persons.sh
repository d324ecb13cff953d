#!/usr/bin/env bash
# Issue 13 item 7, prepared for an H100/H200 when the device tool lends one (none was lent when this was
# written, so it has not run on a GPU yet): one short script, ~8 minutes, results under $OUT (default out/).
#   1. sampling speed at 96x256, DDIM 25, bf16 (goal >= 200 cutouts/s), benchmarks/diffusion_speed.py;
#   2. a longer generator training on a vtest run's scene cutouts + ../shared/data/human-seg (base preset);
#   3. 300 gated persons from it (COCO YOLO11n teacher as the gate) and their contact sheet.
# Usage on the device machine, from the repository root with the venv built: bash benchmarks/gpu_persons.sh
set -euo pipefail
OUT=${OUT:-out}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
STEPS=${STEPS:-3000}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
$PY benchmarks/diffusion_speed.py --preset base --device cuda | tee "$OUT/diffusion_speed.txt"
RUN="$OUT/runs/vt"
$PY -m trainer.cli scene --run "$RUN" --video "$DATA/vtest/vtest.avi" --no-progress
$PY -m trainer.cli persons train --run "$RUN" --data "$DATA/human-seg" --preset base --steps "$STEPS" \
    --device cuda --no-progress | tee "$OUT/generator.txt"
$PY -m trainer.cli persons sample --run "$RUN" --n 300 --device cuda \
    --teacher "$DATA/models/coco-yolo11n-640-int8w.tflite" --teacher-metadata "$DATA/models/coco-names-metadata.yaml" \
    | tee "$OUT/persons.txt"
cp "$RUN/persons/contact_sheet.png" "$RUN/persons/persons.json" "$RUN/generator/generator.json" "$OUT/"
rm -rf "$OUT/runs"  # the checkpoints are too big to bring back; the figures and the sheet are enough
