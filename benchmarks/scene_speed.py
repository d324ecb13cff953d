"""The scene stage's speed at 576p and 1080p, side by side in one process: input frames per second of wall
time and the time of every step (scene.json's timings_s).

    .venv/bin/python benchmarks/scene_speed.py                    # vtest.avi, and vtest upscaled to 1080p
    .venv/bin/python benchmarks/scene_speed.py --video cam.mp4 --frames 400

The 1080p clip is vtest's first --frames frames resized to 1920x1080 (the same people, 1.9x taller in
pixels), so the two runs differ in pixels only. Figures, not a test (issue 11: "an hour of 1080p footage is
practical"; 214 frames of 1080p took 311 s before this benchmark existed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
from _common import VTEST


def write_scaled(src: Path, out: Path, size: tuple[int, int], frames: int) -> Path:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    n = 0
    while n < frames:
        ok, f = cap.read()
        if not ok:
            break
        vw.write(f if (f.shape[1], f.shape[0]) == size else cv2.resize(f, size, interpolation=cv2.INTER_LINEAR))
        n += 1
    vw.release()
    return out


def main(argv: list[str] | None = None) -> int:
    from trainer.scene.params import SceneParams
    from trainer.scene.run import build_scene

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(VTEST))
    ap.add_argument("--frames", type=int, default=400, help="input frames per clip")
    ap.add_argument("--out", help="write results.json here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"576p": write_scaled(Path(args.video), Path(tmp) / "576.avi", (768, 576), args.frames),
                 "1080p": write_scaled(Path(args.video), Path(tmp) / "1080.avi", (1920, 1080), args.frames)}
        for name, clip in clips.items():
            t0 = time.perf_counter()
            summary = build_scene(clip, Path(tmp) / f"scene-{name}", SceneParams(accept_weak_evidence=True),
                                  progress=False)
            wall = time.perf_counter() - t0
            n = summary["video"]["frame_count"]
            rows.append({"clip": name, "frames": n, "seconds": round(wall, 1), "frames_per_s": round(n / wall, 2),
                         "hours_of_25fps_per_day": round(n / wall * 86400 / (25 * 3600), 1),
                         "timings_s": summary["timings_s"], "evidence": summary["evidence"]["verdict"]})
            print(f"{name}: {n} frames in {wall:.1f} s = {n / wall:.2f} frames/s; steps {summary['timings_s']}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
