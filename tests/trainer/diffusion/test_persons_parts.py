"""The person generator's parts on their own: U-Net, schedules, loss weights, samplers, masks, data, KID."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from persons_helpers import micro_config

from edge.errors import CctvkitError
from trainer.diffusion.data import conform_mask, find_items, load_dataset, person_crop, split
from trainer.diffusion.gaussian_diffusion import GaussianDiffusion, make_betas, weight_map
from trainer.diffusion.masks import MaskBank, jitter_mask
from trainer.diffusion.samplers import sample, timestep_subsequence
from trainer.diffusion.score import grabcut_foreground, kid
from trainer.diffusion.unet import UNet, timestep_embedding


def test_unet_shapes_and_zero_start():
    cfg = micro_config()
    net = UNet(cfg.model)
    x, m = torch.randn(3, 3, 40, 16), torch.ones(3, 1, 40, 16)
    out = net(x, m, torch.tensor([0, 50, 99]))
    assert out.shape == (3, 3, 40, 16)
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv: training starts from eps_hat = 0
    with torch.no_grad():  # give the zero-initialised layers weights, as training would
        for prm in net.parameters():
            if prm.ndim > 1 and not prm.any():
                prm.normal_(0, 0.05)
    a, b = net(x, m, torch.tensor([0, 0, 0])), net(x, m, torch.tensor([99, 99, 99]))
    assert not torch.allclose(a, b)  # the timestep reaches the output
    assert not torch.allclose(a, net(x, -m, torch.tensor([0, 0, 0])))  # so does the mask channel
    emb = timestep_embedding(torch.tensor([0.0, 10.0]), 9)
    assert emb.shape == (2, 9) and not torch.allclose(emb[0], emb[1])


def test_every_preset_builds():
    from trainer.diffusion.defaults import PRESETS, make_config

    params = {}
    for name in PRESETS:
        cfg = make_config(name)
        h, w = cfg.data.height, cfg.data.width
        with torch.device("meta"):  # shapes only: no memory, no compute for the GPU-sized presets
            net = UNet(cfg.model)
            out = net(torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w), torch.zeros(1))
        assert out.shape == (1, 3, h, w)
        params[name] = sum(p.numel() for p in net.parameters())
    assert params["tiny"] < 1e6 < params["base"] < params["large"]
    assert make_config("base").data.width == 96 and make_config("base").data.height == 256
    with pytest.raises(CctvkitError, match="unknown key 'train.stepz'"):
        make_config("tiny", {"train": {"stepz": 3}})
    with pytest.raises(CctvkitError, match="multiples of 4"):
        make_config("tiny", {"data": {"width": 30}})
    with pytest.raises(CctvkitError, match="unknown preset 'huge'"):
        make_config("huge")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules(schedule):
    b = make_betas(schedule, 1000)
    assert b.shape == (1000,) and (b > 0).all() and (b <= 0.999).all()
    ab = np.cumprod(1 - b)
    assert (np.diff(ab) < 0).all() and ab[0] > 0.99 and ab[-1] < 1e-3
    # Linear is rescaled with T so the end noise level is the same for any number of steps.
    assert np.cumprod(1 - make_betas(schedule, 100))[-1] < 1e-2


def test_weight_map_emphasises_head_and_person():
    cfg = micro_config()
    m = torch.zeros(1, 1, 40, 16)
    m[..., 10:38, 4:12] = 1  # a person from row 10 to 37: the head rows are 10..18 (30 %)
    w = weight_map(m, cfg.diffusion)[0, 0]
    assert torch.isclose(w.mean(), torch.tensor(1.0))
    assert w[12, 8] > w[30, 8] > w[2, 2]  # head > body > background
    assert torch.isclose(w[30, 8] / w[2, 2], torch.tensor(2.0))  # person_weight 1: twice the background
    empty = weight_map(torch.zeros(1, 1, 40, 16), cfg.diffusion)
    assert torch.allclose(empty, torch.ones_like(empty))


def test_q_sample_matches_the_marginal():
    d = GaussianDiffusion(micro_config().diffusion)
    x0 = torch.full((4000, 1, 1, 1), 0.5)
    t = torch.full((4000,), 60)
    xt = d.q_sample(x0, t, torch.randn(4000, 1, 1, 1, generator=torch.Generator().manual_seed(0)))
    ab = float(d.alphas_cumprod[60])
    assert abs(xt.mean().item() - 0.5 * ab**0.5) < 0.05 and abs(xt.std().item() - (1 - ab) ** 0.5) < 0.05


def test_timestep_subsequence():
    seq = timestep_subsequence(1000, 25)
    assert len(seq) == 25 and seq[0] == 999 and seq[-1] == 0 and seq == sorted(seq, reverse=True)
    assert timestep_subsequence(100, 500) == list(range(99, -1, -1))


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
def test_samplers_deterministic_under_a_seed(sampler, eta):
    cfg = micro_config()
    torch.manual_seed(0)
    net = UNet(cfg.model)
    torch.nn.init.normal_(net.out[2].weight, std=0.05)
    d = GaussianDiffusion(cfg.diffusion)
    m = torch.zeros(2, 1, 40, 16)
    m[..., 5:35, 4:12] = 1

    def run(seed):
        return sample(net, d, m, sampler, 5, eta, torch.Generator().manual_seed(seed))

    a, b, c = run(1), run(1), run(2)
    assert a.shape == (2, 3, 40, 16) and a.abs().max() <= 1.0
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert net.training  # restored after sampling


def test_mask_bank_roundtrip_draw_and_jitter(tmp_path):
    rng = np.random.default_rng(0)
    masks = np.zeros((5, 40, 16), np.uint8)
    for i in range(5):
        masks[i, 5 + i:35, 3:13 - i % 3] = 255
    bank = MaskBank(masks)
    back = MaskBank.from_state(bank.to_state())
    assert np.array_equal(back.masks, bank.masks)
    a, ia = bank.draw(7, seed=3)
    b, ib = bank.draw(7, seed=3)
    assert a.shape == (7, 40, 16) and np.array_equal(a, b) and ia == ib
    assert not np.array_equal(a, bank.draw(7, seed=4)[0])
    j = jitter_mask(masks[0], rng)
    area0, area1 = (masks[0] > 0).sum(), (j > 0).sum()
    assert 0.8 * area0 < area1 < 1.2 * area0 and set(np.unique(j)) <= {0, 255}
    # scene cutouts: RGBA PNGs of any size become letterboxed masks at the bank's size
    (tmp_path / "cut").mkdir()
    rgba = np.zeros((90, 30, 4), np.uint8)
    rgba[10:85, 5:25, 3] = 255
    cv2.imwrite(str(tmp_path / "cut" / "00001.png"), rgba)
    cfg = micro_config()
    scene = MaskBank.from_cutouts(tmp_path / "cut", cfg.data)
    assert scene.masks.shape == (1, 40, 16) and scene.sources == ["scene:00001.png"]
    assert len(bank.extend(scene)) == 6
    with pytest.raises(CctvkitError, match="no RGBA cutouts"):
        MaskBank.from_cutouts(tmp_path, cfg.data)


def test_data_pairs_resize_and_crop(figures):
    cfg = micro_config()
    items = find_items(figures)
    assert len(items) == 12 and all(it.mask is not None for it in items)
    data = load_dataset(figures, cfg.data)
    assert data.images.shape == (12, 40, 16, 3) and data.masks.shape == (12, 40, 16)
    frac = (data.masks > 0).mean(axis=(1, 2))
    assert (frac > 0.25).all() and (frac < 0.8).all()  # the person fills the crop, with margin
    tr, held = split(load_dataset(figures, cfg.data.model_copy(update={"holdout_every": 4})), 4)
    assert len(tr) == 9 and len(held) == 3 and not set(tr.names) & set(held.names)
    # a mask at a third of the image's size, same aspect: resized, not refused
    m = conform_mask(np.full((40, 20), 255, np.uint8), (120, 60), "m.png")
    assert m.shape == (120, 60)
    rgb = np.zeros((100, 300, 3), np.uint8)  # a wide image: the crop is letterboxed with gray
    mk = np.zeros((100, 300), np.uint8)
    mk[10:90, 140:160] = 255
    img, mc = person_crop(rgb, mk, cfg.data)
    assert img.shape == (40, 16, 3) and mc.shape == (40, 16)
    assert person_crop(rgb, np.zeros_like(mk), cfg.data) is None


def test_rgba_cutout_folder(tmp_path):
    for i in range(3):
        rgba = np.zeros((80, 32, 4), np.uint8)
        rgba[..., :3] = 90
        rgba[8:76, 8:24, 3] = 255
        cv2.imwrite(str(tmp_path / f"{i}.png"), rgba)
    data = load_dataset(tmp_path, micro_config().data)
    assert len(data) == 3 and data.masks.max() == 255


def test_kid_and_grabcut_can_fail():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    same, _ = kid(a, b)
    shifted, _ = kid(a, b + 1.0)
    assert abs(same) < 0.02 and shifted > 10 * max(abs(same), 1e-3)
    img = np.full((80, 32, 3), 200, np.uint8)
    img[10:70, 8:24] = (30, 60, 160)  # a dark figure on a light background
    fg = grabcut_foreground(img, (8, 10, 24, 70))
    truth = np.zeros((80, 32), bool)
    truth[10:70, 8:24] = True
    assert (fg & truth).sum() / (fg | truth).sum() > 0.8
    flat = grabcut_foreground(np.full((80, 32, 3), 128, np.uint8), (8, 10, 24, 70))
    assert (flat & truth).sum() / max(1, (flat | truth).sum()) < 1.0



class _GaussianOracle(torch.nn.Module):
    """The exact noise predictor when every pixel of the data is N(mu, s^2) independently:
    E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a). A correct sampler turns pure noise into
    pixels with that mean and spread; a wrong coefficient anywhere shifts or scales them."""

    def __init__(self, d: GaussianDiffusion, mu: float, s: float):
        super().__init__()
        self.d, self.mu, self.s = d, mu, s

    def forward(self, x, cond, t):
        a = self.d.alpha_bar(t)
        return (1 - a).sqrt() * (x - a.sqrt() * self.mu) / (a * self.s**2 + 1 - a)


@pytest.mark.parametrize("sampler,steps,eta,tol", [("ddim", 1000, 0.0, 0.03), ("ddpm", 1000, 0.0, 0.03),
                                                   ("ddim", 25, 0.0, 0.12), ("ddim", 50, 1.0, 0.12)])
def test_samplers_reproduce_the_data_distribution_with_an_exact_model(sampler, steps, eta, tol):
    """All 1000 steps: the spread is exact (measured 0.250 DDIM, 0.249 DDPM); 25-50 steps shrink it by the
    known discretisation error of few-step samplers (measured 0.225, 0.223)."""
    from trainer.diffusion.defaults import DiffusionParams

    d = GaussianDiffusion(DiffusionParams(timesteps=1000, schedule="cosine"))
    out = sample(_GaussianOracle(d, 0.2, 0.25), d, torch.ones(8, 1, 40, 16), sampler, steps, eta,
                 torch.Generator().manual_seed(0))
    assert abs(out.mean().item() - 0.2) < 0.01 and abs(out.std().item() / 0.25 - 1) < tol, \
        (out.mean().item(), out.std().item())


def test_ema_copies_then_ramps_to_its_decay():
    from trainer.diffusion.ema import EMA

    net = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(net, decay=0.9, start=2)
    for step, value in ((1, 1.0), (2, 2.0)):  # up to `start`: a plain copy
        net.weight.data.fill_(value)
        ema.update(net, step)
        assert ema.model.weight.item() == value
    net.weight.data.fill_(12.0)
    ema.update(net, 3)  # k = 1: decay (1 + 1) / (10 + 1)
    assert abs(ema.model.weight.item() - (2.0 * 2 / 11 + 12.0 * 9 / 11)) < 1e-5
    for step in range(4, 200):
        ema.update(net, step)
    assert abs(ema.model.weight.item() - 12.0) < 1e-4 and not ema.model.weight.requires_grad


def test_kid_with_a_user_feature_network(tmp_path, figures):
    from trainer.diffusion.sample import to_rgba, write_cutouts
    from trainer.diffusion.score import run_score

    torch.manual_seed(0)
    # a stand-in for the user's network: a coarse thumbnail (8x4x3 = 96 features) as TorchScript
    net = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((8, 4)), torch.nn.Flatten()))
    net.save(str(tmp_path / "features.pt"))
    data = load_dataset(figures, micro_config().data)
    write_cutouts(tmp_path / "same", to_rgba(data.images, data.masks, 0.8), {})
    write_cutouts(tmp_path / "noise", to_rgba(255 - data.images, data.masks, 0.8), {})  # colour negatives
    same = run_score(tmp_path / "same", real=figures, kid_features=tmp_path / "features.pt")
    other = run_score(tmp_path / "noise", real=figures, kid_features=tmp_path / "features.pt")
    assert same["kid"]["n_gen"] == same["kid"]["n_real"] == 12 and "kid" not in same["skipped"]
    # 12 vs 12 samples: the unbiased estimate of identical sets is -0.035 (its small-sample bias), the colour
    # negatives +0.026
    assert other["kid"]["mean"] > 0 > same["kid"]["mean"] and other["kid"]["mean"] - same["kid"]["mean"] > 0.03
    assert "likeness" in same["skipped"] and same["silhouette"]["n"] == 12
    with pytest.raises(CctvkitError, match="cannot load feature network"):
        (tmp_path / "bad.pt").write_bytes(b"junk")
        run_score(tmp_path / "same", real=figures, kid_features=tmp_path / "bad.pt")
