"""Noise schedule, UNet, samplers, pretraining (resume equivalence) and checkpoints."""

from __future__ import annotations

import pytest
import torch

from unlearn_gym.checkpoints import CheckpointError, load_checkpoint, read_sidecar
from unlearn_gym.data import build_contaminated_mnist
from unlearn_gym.diffusion import NoiseSchedule, build_unet, ddim_sample, ddpm_sample, pretrain
from unlearn_gym.presets import PRESETS, get_preset


def test_schedule_properties():
    s = NoiseSchedule()
    assert s.num_steps == 1000
    assert torch.isclose(s.betas[0], torch.tensor(1e-4)) and torch.isclose(s.betas[-1], torch.tensor(0.02))
    assert torch.allclose(s.gamma**2 + s.sigma**2, torch.ones(1000), atol=1e-6)
    assert (s.gamma[1:] < s.gamma[:-1]).all() and (s.sigma[1:] > s.sigma[:-1]).all()
    assert s.gamma[-1] < 0.01 and s.gamma[0] > 0.999
    x0, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    xt = s.q_sample(x0, t, eps)
    g, sg = s.coefficients(t)
    assert torch.allclose(xt, g * x0 + sg * eps)
    with pytest.raises(ValueError):
        NoiseSchedule(beta_start=0.0)


@pytest.mark.parametrize("name", list(PRESETS))
def test_unet_shapes(name):
    p = get_preset(name)
    model = build_unet(p)
    x = torch.randn(2, 1, p.resolution, p.resolution)
    out = model(x, torch.tensor([0, 999]), torch.tensor([1, 9]))
    assert out.shape == x.shape


def test_tiny_unet_size():
    n = sum(q.numel() for q in build_unet("tiny").parameters())
    assert 0.5e6 < n < 0.7e6


def test_unknown_preset():
    with pytest.raises(ValueError, match="choose one of"):
        get_preset("huge")


def test_class_conditioning_matters():
    torch.manual_seed(0)
    model = build_unet("micro")
    for p in model.parameters():  # move off the zero-initialised output layer
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([500])
    assert not torch.allclose(model(x, t, torch.tensor([0])), model(x, t, torch.tensor([1])))


@pytest.mark.parametrize("sampler", [ddim_sample, ddpm_sample])
def test_sampler_deterministic_given_generator(sampler):
    torch.manual_seed(0)
    model = build_unet("micro")
    labels = torch.arange(4)
    s = NoiseSchedule()
    a = sampler(model, s, labels, steps=5, generator=torch.Generator().manual_seed(1))
    b = sampler(model, s, labels, steps=5, generator=torch.Generator().manual_seed(1))
    c = sampler(model, s, labels, steps=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 1, 8, 8) and a.abs().max() <= 1


def test_ddim_same_noise_same_images():
    torch.manual_seed(0)
    model = build_unet("micro")
    noise = torch.randn(3, 1, 8, 8)
    s = NoiseSchedule()
    a = ddim_sample(model, s, torch.arange(3), steps=4, noise=noise, generator=torch.Generator().manual_seed(1))
    b = ddim_sample(model, s, torch.arange(3), steps=4, noise=noise, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)  # DDIM uses no randomness beyond the initial noise


def test_pretrain_resume_equivalence(tmp_path):
    data = build_contaminated_mnist("micro")
    kw = dict(steps=30, seed=5, data=data, progress=False, save_every=1000)
    full = pretrain("micro", tmp_path / "full.pt", **kw)
    pretrain("micro", tmp_path / "part.pt", until=13, **kw)
    assert load_checkpoint(tmp_path / "part.pt", "ddpm")["step"] == 13
    resumed = pretrain("micro", tmp_path / "part.pt", resume=tmp_path / "part.pt", **kw)
    assert resumed["step"] == full["step"] == 30
    for a, b in zip(full["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full["ema"].state_dict().values(), resumed["ema"].state_dict().values()):
        assert torch.equal(a, b)
    meta = read_sidecar(tmp_path / "full.pt")
    assert meta["preset"] == "micro" and meta["step"] == 30 and meta["data"]["content_hash"]
    assert {"torch", "unlearn_gym"} <= set(meta["versions"])


def test_resume_with_other_settings_is_refused(tmp_path):
    data = build_contaminated_mnist("micro")
    pretrain("micro", tmp_path / "a.pt", steps=4, data=data, progress=False)
    with pytest.raises(ValueError, match="same --steps"):
        pretrain("micro", tmp_path / "b.pt", steps=8, data=data, progress=False, resume=tmp_path / "a.pt")


def test_corrupt_and_foreign_checkpoints(tmp_path):
    from unlearn_gym.pretrained import load_ddpm_file

    data = build_contaminated_mnist("micro")
    pretrain("micro", tmp_path / "a.pt", steps=2, data=data, progress=False)
    good = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_ddpm_file(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_ddpm_file(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_ddpm_file(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="preset 'micro', not 'tiny'"):
        load_ddpm_file(tmp_path / "a.pt", preset="tiny")
    torch.save({"x": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an unlearn-gym checkpoint"):
        load_ddpm_file(tmp_path / "foreign.pt")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_pretrain_leaves_the_global_rng_alone(tmp_path):
    data = build_contaminated_mnist("micro")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    pretrain("micro", tmp_path / "a.pt", steps=2, data=data, progress=False)
    assert torch.equal(before, torch.random.get_rng_state())
