"""The compose stage's speed: composed images per second at 640x480 on this machine, with real persons and
with generated ones, one worker process against one per core, side by side in one process.

    .venv/bin/python benchmarks/compose_speed.py                      # real persons only
    .venv/bin/python benchmarks/compose_speed.py --generated 120      # + 120 generated persons: 50/50, all

The scene is built once from vtest's first --frames frames resized to 640x480 (the scene stage of `trainer
demo`). --generated N trains the tiny person generator on that scene's cutouts for --generator-steps steps
and samples N persons with the gate off (speed does not depend on how good they are).
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
    from edge.manifest import Manifest
    from edge.stages import PersonsOut
    from trainer import pipeline
    from trainer.compose import ComposeParams, compose_dataset
    from trainer.config import PersonsParams, PipelineConfig
    from trainer.scene.params import SceneParams

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(VTEST))
    ap.add_argument("--frames", type=int, default=400, help="input frames of the scene")
    ap.add_argument("--images", type=int, default=400, help="composed data set size (train + val)")
    ap.add_argument("--generated", type=int, default=0, help="generated persons to sample for the generated rows")
    ap.add_argument("--generator-steps", type=int, default=300)
    ap.add_argument("--out", help="write results.json here")
    args = ap.parse_args(argv)
    mixes = {"real": {"real": 1.0}}
    if args.generated:
        mixes.update({"50/50": {"real": 0.5, "generated": 0.5}, "generated": {"generated": 1.0}})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_scaled(Path(args.video), Path(tmp) / "640.avi", (640, 480), args.frames)
        cfg = PipelineConfig(scene=SceneParams(accept_weak_evidence=True),
                             persons=PersonsParams(steps=args.generator_steps, n=max(args.generated, 1), gate="off"))
        m = Manifest.create(Path(tmp) / "run", "compose-speed")
        m.run_dir.mkdir()
        m.save()
        pipeline.run_scene(m, clip, cfg, progress=False)
        scene_dir = m.output("scene", "plate.png").parent
        persons_dir = None
        if args.generated:
            pipeline.run_generated_persons(m, cfg, progress=False)
            persons_dir = m.output("persons", PersonsOut.persons_json.name).parent
        for name, mix in mixes.items():
            for workers in (1, 0):
                out = Path(tmp) / f"compose-{len(rows)}"
                out.mkdir()
                params = ComposeParams(n_images=args.images, persons=mix, workers=workers)
                s = compose_dataset(scene_dir, out, params, progress=False, persons_dir=persons_dir)
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
