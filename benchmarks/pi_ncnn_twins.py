"""For benchmarks/pi_check.sh: a twin of every ncnn model with ncnn's fp16 storage/arithmetic the other way.

ncnn turns fp16 storage and arithmetic on by default on ARMv8.2 cores (the Pi 5's Cortex-A76); export
records the choice per model (ModelSpec notes `ncnn_fp16`). The twin, `<name>-fp16-on` or `<name>-fp16-off`,
is the same file with the opposite setting, so the emulated Pi measures what the choice costs or buys in
mAP50 and per-frame counts (pi_check_compare.py's second table). On x86 ncnn has no fp16 arithmetic,
so there the twins show the storage part only.

    python benchmarks/pi_ncnn_twins.py RUN_COPY/manifest.json     (rewrites that copy's manifest in place)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_text

SUFFIX = {True: "-fp16-on", False: "-fp16-off"}


def effective_fp16(entry: dict[str, Any]) -> bool:
    """The setting edge/backends/ncnn.py takes for this manifest entry."""
    return bool((entry.get("notes") or {}).get("ncnn_fp16", entry.get("precision") in ("fp16", "int8")))


def twin_of(name: str) -> str | None:
    """The model a twin was made from, or None for a model that is not a twin."""
    for s in SUFFIX.values():
        if name.endswith(s):
            return name.removesuffix(s)
    return None


def add_twins(manifest: dict[str, Any]) -> list[str]:
    models = manifest["models"]
    added = []
    for name, entry in list(models.items()):
        if entry.get("format") != "ncnn" or twin_of(name):
            continue
        flip = not effective_fp16(entry)
        twin = name + SUFFIX[flip]
        if twin in models:
            continue
        models[twin] = {**entry, "notes": {**(entry.get("notes") or {}), "ncnn_fp16": flip}}
        added.append(twin)
    return added


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: pi_ncnn_twins.py MANIFEST.json", file=sys.stderr)
        return 2
    path = Path(args[0])
    doc = json.loads(path.read_text())
    added = add_twins(doc)
    atomic_write_text(path, json.dumps(doc, indent=1))
    print(" ".join(added))
    return 0


if __name__ == "__main__":
    sys.exit(main())
