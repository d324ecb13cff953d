"""The compose stage's speed: composed images per second at 640x480 on this machine, with real persons and
with generated ones, one worker process against one per core, side by side in one process.

    .venv/bin/python benchmarks/compose_speed.py                                  # real persons only
    .venv/bin/python benchmarks/compose_speed.py --persons runs/vt/persons        # + generated, 50/50 mix

The scene is built once from vtest's first --frames frames resized to 640x480 (trainer scene, the same code
as `trainer demo`). --persons is a persons stage folder (`trainer persons sample --run RUN` on a vtest run):
its cutouts are scaled to the scene's perspective like real ones, so any run of the same video will do.
Every figure is the whole stage (paste, blend, jitter, JPEG, labels, classifier images, compose.json).
Figures, not a test (issue 13's goal: >= 100 images/s at 640x480 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _common import VTEST
from scene_speed import write_scaled


def main(argv: list[str] | None = None) -> int:
    from trainer.compose import ComposeParams, compose_dataset
    from trainer.scene.params import SceneParams
    from trainer.scene.run import build_scene

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(VTEST))
    ap.add_argument("--frames", type=int, default=400, help="input frames of the scene")
    ap.add_argument("--images", type=int, default=400, help="composed data set size (train + val)")
    ap.add_argument("--persons", help="a persons stage folder (persons.json + cutouts/) for the generated rows")
    ap.add_argument("--out", help="write results.json here")
    args = ap.parse_args(argv)
    mixes = {"real": {"real": 1.0}}
    if args.persons:
        mixes.update({"50/50": {"real": 0.5, "generated": 0.5}, "generated": {"generated": 1.0}})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_scaled(Path(args.video), Path(tmp) / "640.avi", (640, 480), args.frames)
        build_scene(clip, Path(tmp) / "scene", SceneParams(accept_weak_evidence=True), progress=False)
        for name, mix in mixes.items():
            for workers in (1, 0):
                out = Path(tmp) / f"compose-{len(rows)}"
                out.mkdir()
                params = ComposeParams(n_images=args.images, persons=mix, workers=workers)
                s = compose_dataset(Path(tmp) / "scene", out, params, progress=False,
                                    persons_dir=Path(args.persons) if args.persons else None)
                label = f"{workers} worker" if workers else f"one per core ({os.cpu_count()})"
                rows.append({"persons": name, "workers": label, "images": s["images"], "seconds": s["seconds"],
                             "images_per_s": s["images_per_s"], "frame_size": s["frame_size"],
                             "persons_by_source": s["persons_by_source"]["train"]})
                print(f"{name:9s} {label:18s} {s['images']} images {s['frame_size'][0]}x{s['frame_size'][1]} in "
                      f"{s['seconds']:.2f} s = {s['images_per_s']:.1f} images/s; train persons "
                      f"{s['persons_by_source']['train']}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
