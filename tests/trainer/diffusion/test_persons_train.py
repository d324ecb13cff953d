"""Training, exact resume, DDP (world size 1, gloo), sampling to RGBA and the CLI, on the micro config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from persons_helpers import micro_config

from edge.errors import CctvkitError
from trainer.diffusion.checkpoint import load_checkpoint
from trainer.diffusion.sample import run_sample
from trainer.diffusion.train import train

ROOT = Path(__file__).resolve().parents[3]


def _loss_drop(res: dict) -> tuple[float, float]:
    losses = res["losses"]
    return float(np.mean(losses[:10])), float(np.mean(losses[-10:]))


def test_loss_decreases_on_generated_figures(figures, tmp_path):
    res = train(micro_config(steps=50, batch=8), figures, tmp_path / "run", progress=False)
    first, last = _loss_drop(res)
    assert last < 0.75 * first, (first, last)
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 1 + 10  # log_every 5
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000


def test_loss_decreases_on_real_masks(shared_data, tmp_path):
    data = shared_data / "human-seg"
    if not data.is_dir():
        pytest.skip("needs ../shared/data/human-seg")
    cfg = micro_config(steps=50, batch=8)
    res = train(cfg.model_copy(update={"data": cfg.data.model_copy(update={"holdout_every": 10})}), data,
                tmp_path / "run", progress=False)
    assert res["n_train"] == 261 and res["n_holdout"] == 29  # 290 photos, every 10th held out
    first, last = _loss_drop(res)
    assert last < 0.8 * first, (first, last)


def _states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_reproduces_the_uninterrupted_run(figures, tmp_path):
    full = train(micro_config(steps=6, ckpt_every=3), figures, tmp_path / "full", progress=False)
    part = train(micro_config(steps=3), figures, tmp_path / "split", progress=False)
    with pytest.raises(CctvkitError, match="already holds a checkpoint"):
        train(micro_config(steps=6), figures, tmp_path / "split", progress=False)
    rest = train(micro_config(steps=6), figures, tmp_path / "split", resume=True, progress=False)
    assert part["losses"] + rest["losses"] == full["losses"]
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 6
    _states_equal(a["model"], b["model"])
    _states_equal(a["ema"], b["ema"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        _states_equal(sa, sb)
    # a different architecture cannot continue the run
    other = micro_config(steps=9).model_copy(update={"model": micro_config().model.model_copy(update={"channels": 4})})
    with pytest.raises(CctvkitError, match="different model"):
        train(other, figures, tmp_path / "split", resume=True, progress=False)


def test_ddp_world_size_one_matches_single_process(figures, tmp_path, monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    single = train(micro_config(steps=4), figures, tmp_path / "single", progress=False)
    ddp = train(micro_config(steps=4), figures, tmp_path / "ddp", progress=False, ddp=True)
    assert ddp["world_size"] == 1 and not torch.distributed.is_initialized()  # torn down afterwards
    assert "MASTER_PORT" not in os.environ  # nothing left behind for a later run
    assert ddp["losses"] == single["losses"]
    a, b = load_checkpoint(tmp_path / "single" / "last.pt"), load_checkpoint(tmp_path / "ddp" / "last.pt")
    for k in a["model"]:  # DDP averages gradients over one rank: identical up to float rounding
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sample_rgba_cutouts(trained_micro, tmp_path, sampler):
    out = tmp_path / "gen"
    res = run_sample(trained_micro["ckpt"], out, n=5, sampler=sampler, steps=4, seed=7, progress=False)
    assert res["n"] == 5
    files = sorted((out / "cutouts").glob("*.png"))
    assert len(files) == 5
    img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (40, 16, 4)
    alpha = img[..., 3]
    assert alpha.max() == 255 and alpha.min() == 0 and ((alpha > 0) & (alpha < 255)).any()  # feathered edge
    meta = json.loads((out / "cutouts.json").read_text())
    assert meta["sampler"] == sampler and meta["steps"] == 4 and len(meta["files"]) == 5
    assert cv2.imread(str(out / "contact_sheet.png")) is not None
    # same seed: byte-identical cutouts; another seed: different ones
    again = run_sample(trained_micro["ckpt"], tmp_path / "again", n=5, sampler=sampler, steps=4, seed=7,
                       progress=False)
    assert again["n"] == 5
    same = [(tmp_path / "again" / "cutouts" / f.name).read_bytes() == f.read_bytes() for f in files]
    assert all(same)
    run_sample(trained_micro["ckpt"], tmp_path / "other", n=5, sampler=sampler, steps=4, seed=8, progress=False)
    assert (tmp_path / "other" / "cutouts" / files[0].name).read_bytes() != files[0].read_bytes()
    with pytest.raises(CctvkitError, match="already exists"):
        run_sample(trained_micro["ckpt"], out, n=5, progress=False)


def test_bad_inputs_one_line_errors(tmp_path):
    from trainer.diffusion.data import load_dataset

    cfg = micro_config()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CctvkitError, match="no image\\+mask pairs or RGBA cutouts found"):
        load_dataset(tmp_path / "empty", cfg.data)
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    cv2.imwrite(str(bad / "images" / "a.jpg"), np.zeros((120, 60, 3), np.uint8))
    cv2.imwrite(str(bad / "masks" / "a.png"), np.zeros((60, 60), np.uint8))
    with pytest.raises(CctvkitError, match="masks/a.png: mask is 60x60 but its image a.jpg is 60x120") as e:
        load_dataset(bad, cfg.data)
    assert "\n" not in str(e.value)
    corrupt = tmp_path / "last.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint" * 10)
    with pytest.raises(CctvkitError, match="last.pt: not a readable checkpoint"):
        load_checkpoint(corrupt)
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CctvkitError, match="not a person-generator checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "trainer.cli", "persons", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_train_sample_score_and_errors(figures, tmp_path, shared_data_optional):
    cfg = micro_config(steps=2)
    (tmp_path / "micro.yaml").write_text(json.dumps(cfg.model_dump()))  # JSON is YAML
    proc = _cli("train", "--data", str(figures), "--out", "run", "--config", "micro.yaml", "--ddp",
                "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["world_size"] == 1 and (tmp_path / "run" / "last.pt").is_file()
    proc = _cli("sample", "--ckpt", "run/last.pt", "--out", "gen", "--n", "3", "--steps", "2", "--no-progress",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "gen" / "cutouts").glob("*.png"))) == 3
    args = ["score", "--cutouts", "gen", "--real", str(figures)]
    models = shared_data_optional / "models" if shared_data_optional else None
    if models and (models / "coco-yolov8n-640-int8w.tflite").is_file():
        bg = tmp_path / "bg.png"
        cv2.imwrite(str(bg), np.full((240, 320, 3), 120, np.uint8))
        args += ["--detector", str(models / "coco-yolov8n-640-int8w.tflite"), "--backgrounds", str(bg)]
    proc = _cli(*args, "--json", "scores.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert 0.0 <= scores["silhouette"]["mean_iou"] <= 1.0 and scores["silhouette_real"]["n"] > 0
    assert "kid" in scores["skipped"] and "skipped (no feature network" in proc.stdout
    # bad input: a corrupt checkpoint and an empty data folder, one line each, exit 2
    (tmp_path / "broken.pt").write_bytes(b"\x00" * 100)
    (tmp_path / "empty").mkdir()
    for args, needle in ((("sample", "--ckpt", "broken.pt", "--out", "x"), "broken.pt: not a readable checkpoint"),
                         (("train", "--data", "empty", "--out", "y"), "empty: no image+mask pairs")):
        proc = _cli(*args, cwd=tmp_path)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "last.pt").exists()
