"""`trainer persons train|sample|score`: the person generator on the command line.

    trainer persons train --run runs/x [--data ../shared/data/human-seg]   # stage 'generator' of a run
    trainer persons sample --run runs/x --n 200 [--teacher MODEL] [--gate-conf 0.3]   # stage 'persons'
    trainer persons train --data ../shared/data/human-seg --out runs/persons --preset tiny
    trainer persons train --data DATA --out OUT --resume --steps 5000       # continue / extend a run
    trainer persons sample --ckpt runs/persons/last.pt --out runs/persons/gen --n 500 --steps 25
    trainer persons score --cutouts runs/persons/gen --detector coco-yolov8n-640-int8w.tflite \\
        --backgrounds runs/site1/scene/plate.png --real ../shared/data/human-seg
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from trainer.diffusion.defaults import PRESETS


def _open_run(args: argparse.Namespace, bad: tuple[str, ...]) -> Any:
    from edge.errors import CctvkitError
    from edge.manifest import Manifest

    given = [f"--{k.replace('_', '-')}" for k in bad if getattr(args, k, None)]
    if given:
        raise CctvkitError(f"{', '.join(given)} cannot be combined with --run", args.run,
                           "the run's manifest says where everything is: drop them")
    return Manifest.load(args.run)


def cmd_train_run(args: argparse.Namespace, over: dict[str, Any]) -> int:
    from trainer.diffusion.defaults import load_config
    from trainer.diffusion.runscene import config_fixes_size
    from trainer.diffusion.stage import preset_for, run_generator

    manifest = _open_run(args, ("out", "resume", "ddp"))
    cfg = load_config(args.config, args.preset or preset_for(args.device), over)
    entry = run_generator(manifest, cfg, Path(args.data) if args.data else None, config_fixes_size(args.config),
                          device=args.device, progress=not args.no_progress)
    s = entry["summary"]
    Console().print(f"generator: {s['preset']} {s['size'][0]}x{s['size'][1]}, {s['counts']['crops']} crops, "
                    f"{s['steps']} steps in {s['seconds']:.0f} s on {s['device']}, loss {s['loss_first10']:.3f} -> "
                    f"{s['loss_last10']:.3f} -> {manifest.run_dir / 'generator'}", highlight=False)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from edge.errors import CctvkitError
    from trainer.diffusion.defaults import load_config
    from trainer.diffusion.train import train

    over: dict[str, Any] = {"train": {}}
    for key in ("steps", "batch", "lr", "seed"):
        if getattr(args, key) is not None:
            over["train"][key] = getattr(args, key)
    if args.run:
        return cmd_train_run(args, over)
    if not (args.data and args.out):
        raise CctvkitError("persons train needs --run RUN, or --data DATA and --out OUT", None,
                           "pass a run directory made by `trainer scene`, or both --data and --out")
    cfg = load_config(args.config, args.preset or "tiny", over)
    res = train(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress,
                ddp=True if args.ddp else None, device=args.device)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        losses = res.pop("losses")
        res["loss_first10"] = sum(losses[:10]) / max(1, len(losses[:10]))
        res["loss_last10"] = sum(losses[-10:]) / max(1, len(losses[-10:]))
        Console().print_json(json.dumps(res))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from edge.errors import CctvkitError
    from trainer.diffusion.sample import run_sample

    if args.run:
        from trainer.diffusion.stage import run_persons
        from trainer.relabel.teacher import TeacherFile

        manifest = _open_run(args, ("out", "scene_cutouts", "only_scene", "force"))
        teacher = TeacherFile(Path(args.teacher), Path(args.teacher_metadata) if args.teacher_metadata else None) \
            if args.teacher else None
        run_persons(manifest, args.n, Path(args.ckpt) if args.ckpt else None, teacher, args.gate_conf,
                    args.sampler, args.steps, args.seed, args.device, not args.no_progress)
        return 0
    if args.teacher or args.gate_conf is not None:
        raise CctvkitError("--teacher and --gate-conf belong to the persons stage", None, "add --run RUN")
    if not (args.ckpt and args.out):
        raise CctvkitError("persons sample needs --run RUN, or --ckpt CKPT and --out OUT", None,
                           "pass a run directory with a 'generator' stage, or both --ckpt and --out")
    res = run_sample(args.ckpt, args.out, n=args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                     seed=args.seed, batch=args.batch, scene_cutouts=args.scene_cutouts,
                     only_scene=args.only_scene, device=args.device, progress=not args.no_progress,
                     force=args.force, use_ema=args.weights == "ema")
    Console().print(f"{res['n']} cutouts in {res['seconds']:.1f} s ({res['cutouts_per_s']:.2f}/s) -> {res['out']}")
    return 0


def score_table(res: dict[str, Any]) -> Table:
    t = Table(title=f"person generator scores ({res['n']} cutouts, {res['size'][0]}x{res['size'][1]})")
    t.add_column("score")
    t.add_column("generated", justify="right")
    t.add_column("real held-out", justify="right")
    t.add_column("flat silhouette", justify="right")
    if "likeness" in res:
        real, flat = res.get("likeness_real", {}), res.get("likeness_flat", {})
        for key, label in (("found_frac", "found as person (conf >= 0.5)"), ("mean_conf", "mean detector confidence")):
            t.add_row(label, f"{res['likeness'][key]:.3f}", f"{real[key]:.3f}" if real else "-",
                      f"{flat[key]:.3f}" if flat else "-")
    real_s = res.get("silhouette_real", {})
    t.add_row("silhouette IoU (GrabCut fg vs mask)", f"{res['silhouette']['mean_iou']:.3f}",
              f"{real_s['mean_iou']:.3f}" if real_s else "-", "-")
    if "kid" in res:
        kid = res["kid"]
        t.add_row("KID (user features)", f"{kid['mean']:.4g} +- {kid['std']:.2g}", "0 (reference)", "-")
    return t


def cmd_score(args: argparse.Namespace) -> int:
    from trainer.diffusion.score import run_score

    res = run_score(args.cutouts, args.backgrounds, args.detector, args.real, args.kid_features, seed=args.seed,
                    limit=args.limit, paste_height=args.paste_height)
    out = Console()
    out.print(score_table(res))
    for name, why in res["skipped"].items():
        out.print(f"{name}: skipped ({why})")
    if args.json:
        from edge.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(res, indent=1))
    return 0


def add_persons_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `persons` with train / sample / score to the `trainer` CLI's subparsers."""
    p = subparsers.add_parser("persons", help="mask-conditioned diffusion generator of RGBA person cutouts")
    sub = p.add_subparsers(dest="persons_command", required=True)

    tr = sub.add_parser("train", help="train (or --resume) a generator on a run's scene cutouts, images+masks or "
                        "RGBA cutouts")
    tr.add_argument("--run", help="run directory: train on its scene cutouts (+ --data) and record stage "
                    "'generator' (crop size from the scene's people unless the config sets data.width/height)")
    tr.add_argument("--data", help="folder with images/ + masks/ (same stems) or RGBA PNG cutouts (with --run: "
                    "extra data beside the scene's cutouts)")
    tr.add_argument("--out", help="run folder: last.pt, loss.csv, loss.png, samples/ (not with --run)")
    tr.add_argument("--preset", choices=PRESETS, help="tiny (CPU), base (one GPU), large; default tiny, with "
                    "--run by the device (cpu: tiny, cuda: base)")
    tr.add_argument("--config", help="YAML overriding any key of the preset (preset:, data:, model:, train:, ...)")
    tr.add_argument("--steps", type=int, help="total steps (with --resume: extend the run to this many)")
    tr.add_argument("--batch", type=int, help="global batch size")
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    tr.add_argument("--ddp", action="store_true",
                    help="use DistributedDataParallel even with one process (automatic under torchrun)")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (DDP uses LOCAL_RANK)")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    sa = sub.add_parser("sample", help="RGBA cutouts + contact sheet from a checkpoint's EMA weights")
    sa.add_argument("--run", help="run directory: sample from its generator on its scene's silhouettes, gate them "
                    "by a detector and record stage 'persons'")
    sa.add_argument("--ckpt", help="generator checkpoint (with --run: instead of the run's own)")
    sa.add_argument("--out", help="output folder (cutouts/, contact_sheet.png, cutouts.json; not with --run)")
    sa.add_argument("--teacher", metavar="MODEL", help="with --run, when the run has no exported detector: gate by "
                    "this .onnx/.tflite detector (else HOG)")
    sa.add_argument("--teacher-metadata", metavar="YAML", help="class names of a bare .tflite teacher")
    sa.add_argument("--gate-conf", type=float, help="with --run: the gate's confidence (default 0.3 for a detector; "
                    "HOG: its SVM margin, default 0.5)")
    sa.add_argument("--n", type=int, default=64)
    sa.add_argument("--sampler", choices=("ddim", "ddpm"))
    sa.add_argument("--steps", type=int, help="sampling steps (default: the checkpoint's sample.steps)")
    sa.add_argument("--eta", type=float, help="DDIM noise (0 = deterministic path)")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--batch", type=int)
    sa.add_argument("--scene-cutouts", help="a run's scene/cutouts: add its silhouettes to the mask bank")
    sa.add_argument("--only-scene", action="store_true", help="draw masks only from --scene-cutouts")
    sa.add_argument("--weights", choices=("ema", "raw"), default="ema", help="EMA (default) or the raw weights")
    sa.add_argument("--device", default="auto")
    sa.add_argument("--force", action="store_true", help="replace an existing --out")
    sa.add_argument("--no-progress", action="store_true")
    sa.set_defaults(func=cmd_sample)

    sc = sub.add_parser("score", help="person-likeness, silhouette IoU and (optional) KID of cutouts")
    sc.add_argument("--cutouts", required=True, help="a `persons sample` output folder")
    sc.add_argument("--detector", help="local YOLO .tflite or .onnx (e.g. ../shared/data/models/...tflite)")
    sc.add_argument("--backgrounds", nargs="+", help="images or folders of empty scenes to paste on")
    sc.add_argument("--real", help="real data folder (held-out crops are the reference and KID's real side)")
    sc.add_argument("--kid-features", help="ONNX or TorchScript feature network for KID")
    sc.add_argument("--paste-height", type=int, help="pasted person height in px (default: the crop's own)")
    sc.add_argument("--limit", type=int, help="score only the first N cutouts")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--json", help="also write the scores to this JSON file")
    sc.set_defaults(func=cmd_score)
    return p
