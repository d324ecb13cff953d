"""The two run stages of the person generator, each written through Manifest.write_stage:

  generator  `trainer persons train --run RUN`: trained on the run's scene cutouts (+ --data), at the
             scene's person size; generator/ is the diffusion trainer's folder plus generator.json
  persons    `trainer persons sample --run RUN`: cutouts conditioned on the scene's silhouettes, kept
             only when the gate (trainer/diffusion/gate.py) finds them where they were pasted; persons.json
             (edge/stages.py PersonsOut, version 1) is what compose reads

Everything is read and checked (scene, checkpoint, teacher) before the stage folder is made; the folder
appears under its final name, and the manifest changes, only when the stage is complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.stages import GENERATOR, PERSONS, GeneratorOut, PersonsOut, SceneOut
from trainer.compose.scene import Cutout
from trainer.diffusion.defaults import PersonsConfig
from trainer.diffusion.runscene import (
    PERSONS_READS,
    crop_size,
    is_monochrome,
    read_run_scene,
    scene_person_data,
    with_size,
)

console = Console(stderr=True)
VERSION = 1


def preset_for(device: str) -> str:
    """tiny on a CPU (minutes), base on a GPU."""
    from trainer.diffusion.sample import pick_device

    return "base" if pick_device(device).type == "cuda" else "tiny"


def run_generator(manifest: Manifest, cfg: PersonsConfig, extra: Path | None = None, size_fixed: bool = False,
                  device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train the scene's person generator and record stage 'generator'."""
    from trainer.diffusion.data import PersonData, load_dataset
    from trainer.diffusion.train import train

    rs = read_run_scene(manifest)
    size_why = "fixed by the config (data.width, data.height)"
    if not size_fixed:
        w, h, size_why = crop_size(rs.scene, cfg)
        cfg = with_size(cfg, w, h)
    parts = [scene_person_data(rs.scene, cfg.data)]
    if extra is not None:
        parts.append(load_dataset(extra, cfg.data, progress=progress))
        parts[-1].source = str(Path(extra).resolve())
        parts[-1].names = [f"extra:{n}" for n in parts[-1].names]
    data = PersonData.concat(parts)
    console.print(f"generator: {size_why}; {len(parts[0])} scene crops"
                  + (f" + {len(parts[1])} from {extra}" if extra else ""), highlight=False)

    def body(out: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = train(cfg, data, out, progress=progress, device=device)
        losses = res.pop("losses")
        doc = {
            "version": VERSION,
            "sources": [{"kind": "scene", "path": f"{SceneOut.cutouts.name}/ of scene/", "crops": len(parts[0])}]
            + ([{"kind": "data", "path": parts[1].source, "crops": len(parts[1])}] if extra else []),
            "counts": {"crops": len(data), "train": res["n_train"], "holdout": res["n_holdout"],
                       "skipped": data.skipped},
            "size": [cfg.data.width, cfg.data.height], "size_from": size_why, "preset": cfg.preset,
            "steps": res["step"], "device": res["device"], "params": res["params"],
            "seconds": round(time.perf_counter() - t0, 2), "steps_per_s": round(res["steps_per_s"], 3),
            "loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
            "orientation": rs.orientation,
        }
        (out / GeneratorOut.generator_json.name).write_text(json.dumps(doc, indent=1) + "\n")
        return {"params": cfg.model_dump(), "inputs": rs.inputs, "outputs": GENERATOR.collect(out),
                "external_inputs": {"data": Path(extra)} if extra else {}, "summary": doc}

    return manifest.write_stage(GENERATOR.name, body)


def _person_crop(rgba: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float] | None:
    """(RGBA cropped to the person, foot point inside the crop, person height) or None for an empty alpha."""
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.ascontiguousarray(rgba[y0:y1, x0:x1])
    solid_y, solid_x = np.nonzero(crop[..., 3] > 127)
    if len(solid_y) == 0:
        return None
    bottom = solid_y.max()
    low = solid_x[solid_y >= bottom - max(1, (bottom - solid_y.min()) // 10)]
    foot = (round(float(low.mean()) + 0.5, 1), float(bottom + 1))
    return crop, foot, float(bottom + 1 - solid_y.min())


def _panel(rgba: list[np.ndarray], title: str, size: tuple[int, int], scale: int) -> np.ndarray:
    from trainer.diffusion.sample import contact_sheet

    w, h = size
    tiles = np.stack(rgba) if rgba else np.zeros((1, h, w, 4), np.uint8)
    sheet = contact_sheet(tiles, cols=8, scale=scale)
    head = np.full((22, sheet.shape[1], 3), 255, np.uint8)
    cv2.putText(head, title, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([head, sheet])


def contact_sheet_pair(kept: list[np.ndarray], rejected: list[np.ndarray], size: tuple[int, int],
                       limit: int = 64) -> np.ndarray:
    """Kept (left) and rejected (right) generated persons at the generator's size, side by side."""
    scale = 2 if size[1] < 128 else 1
    left = _panel(kept[:limit], f"kept {len(kept)}", size, scale)
    right = _panel(rejected[:limit], f"rejected {len(rejected)}", size, scale)
    h = max(left.shape[0], right.shape[0])
    pad = [np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in (left, right)]
    return np.hstack([pad[0], np.full((h, 8, 3), 128, np.uint8), pad[1]])


def _silhouettes(cutouts_json: Path) -> dict[str, dict[str, Any]]:
    """Scene cutout records by file name (the mask bank names its silhouettes 'scene:NAME')."""
    return {Path(str(r["file"])).name: r for r in json.loads(cutouts_json.read_text())}


def run_persons(manifest: Manifest, n: int, ckpt: Path | None = None, teacher: Any | None = None,
                gate_conf: float | None = None, sampler: str | None = None, steps: int | None = None, seed: int = 0,
                device: str = "auto", progress: bool = True, gate_off: bool = False) -> dict[str, Any]:
    """Sample n persons from the run's generator (or ckpt), gate them (unless gate_off), record stage
    'persons'."""
    from trainer.diffusion.checkpoint import load_generator
    from trainer.diffusion.gate import Gate, NoGate, choose_gate
    from trainer.diffusion.masks import MaskBank
    from trainer.diffusion.sample import encode_png, generate, pick_device, to_rgba

    if n < 1:
        raise CctvkitError(f"--n {n} must be at least 1", fix="pass --n 1 or more")
    if gate_conf is not None and not gate_conf > 0.0:
        raise CctvkitError(f"--gate-conf {gate_conf} must be positive", fix="pass e.g. --gate-conf 0.3")
    rs = read_run_scene(manifest, PERSONS_READS)
    inputs = dict(rs.inputs)
    external: dict[str, Path] = {}
    if ckpt is None:
        ckpt = manifest.output(GENERATOR.name, GeneratorOut.checkpoint.name)
        inputs["generator"] = ckpt
    else:
        external["generator"] = Path(ckpt)
    dev = pick_device(device)
    model, diffusion, cfg, _, _ = load_generator(ckpt, dev)
    bank = MaskBank.from_cutouts(inputs[SceneOut.cutouts.name], cfg.data)
    records = _silhouettes(inputs[SceneOut.cutouts_json.name])
    detector = NoGate() if gate_off else choose_gate(manifest, teacher)
    gate_conf = detector.default_conf if gate_conf is None else gate_conf
    gate = Gate(rs.scene, detector, gate_conf, seed)
    if gate.detector.model and not Path(gate.detector.model).resolve().is_relative_to(manifest.run_dir):
        external["gate_model"] = Path(gate.detector.model)
    sampler, steps = sampler or cfg.sample.sampler, steps or cfg.sample.steps

    masks, idx, flips = bank.draw_flipped(n, seed)
    t0 = time.perf_counter()
    rgb = generate(model, diffusion, masks, sampler, steps, cfg.sample.eta, seed, cfg.sample.batch, dev, progress)
    gen_seconds = time.perf_counter() - t0
    rgba = to_rgba(rgb, masks, cfg.sample.feather)
    mono = is_monochrome(rs.scene)
    if mono:  # a grey camera's persons are grey: the generator's colour is noise here
        rgba[..., :3] = rgba[..., :3].mean(axis=3, keepdims=True).round().astype(np.uint8)

    t1 = time.perf_counter()
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    tiles: dict[str, list[np.ndarray]] = {"kept": [], "rejected": []}
    images: list[tuple[str, np.ndarray]] = []
    for i in range(n):
        rec_s = records.get(bank.sources[idx[i]].removeprefix("scene:"), {})
        crop = _person_crop(rgba[i])
        frame = int(rec_s.get("frame", -1))
        entry: dict[str, Any] = {"silhouette": rec_s.get("file"), "frame": frame, "flipped": flips[i]}
        conf, where = 0.0, {}
        if crop is not None:
            bgra = cv2.cvtColor(crop[0], cv2.COLOR_RGBA2BGRA)
            entry.update(foot=list(crop[1]), height_px=round(crop[2], 1))
            cut = Cutout(f"generated:{i}", frame, bgra, crop[1], crop[2], (0.0, 0.0, 0.0, 0.0))
            pasted = gate.judge(cut, frame)
            conf, where = pasted.conf, pasted.to_json()
        else:
            entry.update(foot=None, height_px=0.0)
        ok = crop is not None and conf >= gate_conf
        group = kept if ok else rejected
        folder = PersonsOut.cutouts.name if ok else PersonsOut.rejected.name
        entry = {"file": f"{folder}/{len(group) + 1:05d}.png", **entry, "gate_conf": round(conf, 4), **where}
        group.append(entry)
        tiles["kept" if ok else "rejected"].append(rgba[i])
        images.append((entry["file"], cv2.cvtColor(crop[0], cv2.COLOR_RGBA2BGRA) if crop else
                       cv2.cvtColor(rgba[i], cv2.COLOR_RGBA2BGRA)))
    gate_seconds = time.perf_counter() - t1

    in_run = Path(ckpt).resolve().is_relative_to(manifest.run_dir)
    doc: dict[str, Any] = {
        "version": VERSION,
        "cutouts": kept,
        "rejected": rejected,
        "gate": {"by": gate.detector.by, "model": gate.detector.model, "conf": gate_conf, "sampled": n,
                 "kept": len(kept), "rejected_share": round(len(rejected) / n, 4), "iou": 0.5,
                 "seconds": round(gate_seconds, 2)},
        "generator": {"checkpoint": (Path(ckpt).resolve().relative_to(manifest.run_dir).as_posix() if in_run
                                     else str(Path(ckpt).resolve())),
                      "sha256": sha256_file(ckpt), "size": [cfg.data.width, cfg.data.height],
                      "sampler": sampler, "steps": steps, "seed": seed, "seconds": round(gen_seconds, 2),
                      "monochrome": mono,
                      "cutouts_per_s": round(n / max(gen_seconds, 1e-9), 3)},
    }

    def body(out: Path) -> dict[str, Any]:
        (out / PersonsOut.cutouts.name).mkdir()
        (out / PersonsOut.rejected.name).mkdir()
        for name, img in images:
            (out / name).write_bytes(encode_png(img))
        sheet = contact_sheet_pair(tiles["kept"], tiles["rejected"], (cfg.data.width, cfg.data.height))
        (out / PersonsOut.contact_sheet.name).write_bytes(encode_png(sheet))
        (out / PersonsOut.persons_json.name).write_text(json.dumps(doc, indent=1) + "\n")
        params = {"n": n, "gate_conf": gate_conf, "sampler": sampler, "steps": steps, "seed": seed}
        summary = {"gate": doc["gate"], "generator": doc["generator"]}
        return {"params": params, "inputs": inputs, "external_inputs": external,
                "outputs": PERSONS.collect(out), "summary": summary}

    entry = manifest.write_stage(PERSONS.name, body)
    g = doc["gate"]
    console.print(f"persons: kept {g['kept']} of {n} ({g['rejected_share']:.0%} rejected by {g['by']}, "
                  f"conf >= {gate_conf:g}); {doc['generator']['cutouts_per_s']:.2f} cutouts/s generated, "
                  f"gate {gate_seconds:.1f} s -> {manifest.run_dir / PERSONS.name}", highlight=False)
    if not kept:
        console.print("persons: the gate kept none -- train the generator longer (--steps) or lower --gate-conf",
                      highlight=False)
    return entry
