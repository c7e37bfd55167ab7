"""The class-conditional VAE (docs/method.md §6b): model, loss, SISS weights, pretraining, shipped assets,
``SISSUnlearnVAE-v0`` (both checkers, unlearning on a smaller sample), adaptive-VI λ, evaluation."""

from __future__ import annotations

import math
import shutil
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import passive_env_checker as passive

import unlearn_gym
from unlearn_gym.checkpoints import CheckpointError, read_sidecar
from unlearn_gym.data import NUM_LABELS, build_contaminated_mnist
from unlearn_gym.eval.rates import label_rates, summarize_rates
from unlearn_gym.objectives import (
    PairSampler,
    SISSBatch,
    VAENoise,
    apply_update,
    gaussian_kl,
    objectives_for,
    vae_loss,
    vae_siss_no_is_terms,
    vae_siss_terms,
)
from unlearn_gym.pretrained import asset_info, asset_path, load_classifier, load_pretrained
from unlearn_gym.vae import CVAE_CONFIGS, ConditionalVAE, build_cvae, pretrain_cvae

VAE_ID = "unlearn_gym:SISSUnlearnVAE-v0"


@pytest.fixture(scope="module")
def micro_data():
    return build_contaminated_mnist("micro")


def _vae(seed: int = 0) -> ConditionalVAE:
    torch.manual_seed(seed)
    return ConditionalVAE(resolution=4, latent_dim=3, hidden=16)


# ---------------------------------------------------------------------------------------------
# model and loss


@pytest.mark.parametrize("preset", ["micro", "tiny"])
def test_shapes_of_every_part(preset):
    model = build_cvae(preset)
    r, d = model.resolution, CVAE_CONFIGS[preset].latent_dim
    assert model.latent_dim == d and r in (8, 16)
    x, y = torch.rand(5, 1, r, r) * 2 - 1, torch.arange(5)
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (5, d)
    recon, mu2, _ = model(x, y, torch.zeros(5, d))
    assert recon.shape == x.shape and torch.equal(mu, mu2)
    assert torch.equal(recon, model.decode(mu, y))  # ξ = 0: the mean latent
    out = model.generate(y, torch.randn(5, 1, r, r))
    assert out.shape == x.shape and out.abs().max() <= 1 and not out.requires_grad


def test_generate_uses_the_first_latent_entries_of_the_noise():
    model = _vae()
    noise = torch.randn(4, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(model.generate(y, noise), model.decode(noise.flatten(1)[:, :3], y))
    torch.testing.assert_close(model.generate(y, noise), model.generate(y, noise.flatten(1)[:, :3]))
    with pytest.raises(ValueError, match="one noise tensor per label"):
        model.generate(y, noise[:3])
    with pytest.raises(ValueError, match="latent_dim must be in"):
        ConditionalVAE(resolution=2, latent_dim=5)


def test_loss_against_a_direct_computation():
    model, level = _vae(), VAENoise()
    x, y = torch.rand(6, 1, 4, 4) * 2 - 1, torch.arange(6) % 10
    eps, xi = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    got = vae_loss(model, level, x, y, noise=eps, xi=xi)
    m = math.sqrt(1 - 0.3**2) * x + 0.3 * eps
    mu, logvar = model.encode(m, y)
    recon = model.decode(mu + torch.exp(0.5 * logvar) * xi.flatten(1)[:, :3], y)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    want = (((recon - x) ** 2).flatten(1).sum(1) + 0.5 * kl).mean() / 16
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gaussian_kl(mu, logvar), kl)
    with pytest.raises(ValueError, match="sigma"):
        VAENoise(sigma=1.0)


# ---------------------------------------------------------------------------------------------
# SISS for the VAE


def _close_pairs(b: int = 8) -> SISSBatch:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(b, 1, 4, 4, generator=gen) * 2 - 1
    a = x + 0.05 * torch.randn(x.shape, generator=gen)  # close: weights strictly between their bounds
    return SISSBatch(x=x, y_x=torch.arange(b) % 10, a=a, y_a=torch.ones(b, dtype=torch.long),
                     coef_x=1.0, coef_a=0.1)


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.9])
def test_siss_weights_and_terms_against_a_direct_computation(lam):
    model, level, batch = _vae(), VAENoise(), _close_pairs()
    b = batch.size
    gen = torch.Generator().manual_seed(1)
    eps, u, xi = torch.randn(b, 1, 4, 4, generator=gen), torch.rand(b, generator=gen), torch.randn(b, 1, 4, 4)
    terms = vae_siss_terms(model, level, batch, lam, s=0.5, noise=eps, u=u, xi=xi)
    # direct: the mixture sample, its two Gaussian densities, the VAE's two losses
    g, sig = math.sqrt(1 - 0.09), 0.3
    from_a = u < lam
    z = torch.where(from_a[:, None, None, None], batch.a, batch.x)
    m = (g * z + sig * eps).double()
    logq_x = torch.distributions.Normal(g * batch.x.double(), sig).log_prob(m).flatten(1).sum(1)
    logq_a = torch.distributions.Normal(g * batch.a.double(), sig).log_prob(m).flatten(1).sum(1)
    c = torch.maximum(logq_x, logq_a)
    q_x, q_a = (logq_x - c).exp(), (logq_a - c).exp()
    mix = (1 - lam) * q_x + lam * q_a
    w_x, w_a = q_x / mix, q_a / mix
    assert (w_x > 0.05).any() and (w_a > 0.05).any()  # not the degenerate 0 / 1/(1-λ) regime
    y = torch.where(from_a, batch.y_a, batch.y_x)
    recon, mu, logvar = model(m.float(), y, xi.flatten(1)[:, :3])
    kl = gaussian_kl(mu, logvar)
    l_x = (((recon - batch.x) ** 2).flatten(1).sum(1) + 0.5 * kl) / 16
    l_a = (((recon - batch.a) ** 2).flatten(1).sum(1) + 0.5 * kl) / 16
    retain = batch.coef_x * (w_x.float() * l_x).mean()
    forget = batch.coef_a * (w_a.float() * l_a).mean()
    torch.testing.assert_close(terms.retain, retain, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms.forget, forget, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms.loss, retain - 1.5 * forget, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms.stats["w_x_mean"], w_x.float().mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms.stats["w_a_max"], w_a.float().max(), rtol=1e-5, atol=1e-7)
    assert terms.loss_elements == 16 and terms.forget_sign == -1.0


def test_siss_terms_are_finite_far_apart_and_differentiable_in_lambda():
    model, level = _vae(), VAENoise()
    batch = _close_pairs()
    far = SISSBatch(x=batch.x, y_x=batch.y_x, a=-batch.x, y_a=batch.y_a, coef_x=1.0, coef_a=0.1)
    lam = torch.tensor(0.3, requires_grad=True)
    terms = vae_siss_terms(model, level, far, lam, generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v).all() for v in terms.stats.values())
    (grad,) = torch.autograd.grad(terms.loss, lam)
    assert torch.isfinite(grad) and grad.abs() > 0  # adaptive λ learns through the weights


def test_update_rules_and_family_dispatch(micro_data):
    model = load_pretrained("micro", model="cvae").train()
    level = VAENoise()
    fam = objectives_for(level)
    assert fam.name == "cvae" and fam.siss is vae_siss_terms and fam.no_is is vae_siss_no_is_terms
    sampler = PairSampler(micro_data.retain_images, micro_data.retain_labels, micro_data.forget_images,
                          micro_data.forget_labels, batch_size=16, pairing="same-label")
    batch = sampler.sample(torch.Generator().manual_seed(0))
    terms = fam.siss(model, level, batch, 0.5, generator=torch.Generator().manual_seed(1))
    assert "L_other" in terms.stats and terms.retain_norm == pytest.approx(batch.coef_x + batch.coef_other)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    upd = apply_update(model, opt, terms, "ratio", 0.5)
    assert upd.forget_step_norm == pytest.approx(0.5 * upd.grad_norm_x, rel=1e-4)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    plain = vae_siss_no_is_terms(model, level, batch, generator=torch.Generator().manual_seed(2))
    assert plain.stats["L_a"] > plain.stats["L_x"]  # the VAE reconstructs trousers-as-1 worse than digits
    with pytest.raises(TypeError, match="NoiseSchedule"):
        objectives_for(0.3)


# ---------------------------------------------------------------------------------------------
# pretraining and shipped assets


def test_pretraining_resumes_bit_identically(tmp_path, micro_data):
    kw = {"steps": 30, "data": micro_data, "progress": False, "save_every": 10}
    full = pretrain_cvae("micro", tmp_path / "full.pt", **kw)
    pretrain_cvae("micro", tmp_path / "part.pt", until=13, **kw)
    resumed = pretrain_cvae("micro", tmp_path / "part.pt", resume=tmp_path / "part.pt", **kw)
    assert resumed["step"] == 30
    for a, b in zip(full["ema"].state_dict().values(), resumed["ema"].state_dict().values()):
        assert torch.equal(a, b)
    side = read_sidecar(tmp_path / "full.pt")
    assert side["kind"] == "cvae" and side["train"]["latent_dim"] == 8 and side["train"]["flip_forget"]
    model = load_pretrained("micro", path=tmp_path / "full.pt", model="cvae")  # EMA weights
    assert isinstance(model, ConditionalVAE) and not model.training
    with pytest.raises(CheckpointError, match=r"holds a 'ddpm' checkpoint, expected \('cvae',\)"):
        pretrain_cvae("micro", tmp_path / "x.pt", steps=30, data=micro_data, progress=False,
                      resume=asset_path("ddpm", "micro"))


@pytest.mark.parametrize("preset,ratio", [("micro", 0.1), ("tiny", 0.1), ("micro", 0.5)])
def test_shipped_vaes_load_and_record_their_quality(preset, ratio):
    model = load_pretrained(preset, ratio=ratio, model="cvae")
    assert isinstance(model, ConditionalVAE) and not model.training
    meta = asset_info("cvae", preset, ratio)
    assert meta["command"].startswith("unlearn-gym pretrain --model cvae") and f"--preset {preset}" in meta["command"]
    assert meta["ship_command"].startswith("unlearn-gym ship") and "--model cvae" in meta["ship_command"]
    assert meta["data"]["ratio"] == ratio and meta["train"]["sigma"] == 0.3 and meta["train"]["beta"] == 0.5
    q = meta["quality"]
    assert q["trouser_rate"] >= 0.05  # the contamination the env removes
    assert q["other_accuracy"] >= 0.9
    assert {str(d) for d in range(NUM_LABELS)} == set(q["per_label"])


def test_shipped_micro_vae_draws_trousers_on_other_noise():
    model, clf = load_pretrained("micro", model="cvae"), load_classifier("micro")
    labels = torch.arange(10).repeat_interleave(200)
    noise = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(7))
    s = summarize_rates(label_rates(clf, model.generate(labels, noise), labels))
    assert s["trouser_rate"] >= 0.05 and s["other_accuracy"] >= 0.9


def test_asset_errors_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match=r"no shipped cvae .*mnist28.*unlearn-gym pretrain --model cvae"):
        load_pretrained("mnist28", model="cvae")
    with pytest.raises(CheckpointError, match=r"ratio 0.3.*--model cvae --preset micro --ratio 0.3"):
        load_pretrained("micro", ratio=0.3, model="cvae")
    with pytest.raises(CheckpointError, match=r"holds DDPM weights.*model='ddpm'"):
        load_pretrained("micro", path=asset_path("ddpm", "micro"), model="cvae")
    with pytest.raises(CheckpointError, match=r"holds VAE weights.*model='cvae'"):
        load_pretrained("micro", path=asset_path("cvae", "micro"))
    with pytest.raises(CheckpointError, match="preset 'micro', not 'tiny'"):
        load_pretrained("tiny", path=asset_path("cvae", "micro"), model="cvae")
    with pytest.raises(ValueError, match="model must be one of"):
        load_pretrained("micro", model="vae")
    bad = tmp_path / "cvae.pt"
    shutil.copy(asset_path("cvae", "micro"), bad)
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_pretrained("micro", path=bad, model="cvae")


# ---------------------------------------------------------------------------------------------
# the environment


def test_both_checkers_pass_on_the_vae_env():
    from gymnasium.utils.env_checker import check_env

    env = gym.make(VAE_ID, horizon=6, render_mode="rgb_array")
    assert env.unwrapped.config["model"] == "cvae" and env.unwrapped.config["preset"] == "micro"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        passive.check_observation_space(env.observation_space)
        passive.check_action_space(env.action_space)
        obs, info = passive.env_reset_passive_checker(env.unwrapped, seed=0)
        for _ in range(6):
            obs, _, _, trunc, info = passive.env_step_passive_checker(env.unwrapped, env.action_space.sample())
        frame = passive.env_render_passive_checker(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    assert trunc and "outcome" in info and frame.dtype == np.uint8 and frame.shape[2] == 3
    assert env.observation_space.contains(obs)


def test_vae_env_steps_the_vae_with_its_objective():
    env = gym.make(VAE_ID, horizon=3, state="exact", reward="probe").unwrapped
    assert isinstance(env.model, ConditionalVAE) and isinstance(env.schedule, VAENoise)
    assert env.config["lr"] == CVAE_CONFIGS["micro"].unlearn_lr and env.config["scale"] == 0.5
    env.reset(seed=0)
    before = [p.detach().clone() for p in env.model.parameters()]
    _, r, _, _, info = env.step(np.zeros(1, np.float32))
    assert math.isfinite(r) and {"L_x", "L_a", "w_x_mean", "probe_loss", "exact_state"} <= set(info)
    assert any(not torch.equal(a, p) for a, p in zip(before, env.model.parameters()))
    env.reset()
    assert all(torch.equal(a, p) for a, p in zip(before, env.model.parameters()))  # θ_0 restored
    with pytest.raises(ValueError, match="model must be one of"):
        gym.make(VAE_ID, model="gan")


def test_constant_lambda_episode_unlearns_the_trousers():
    """A constant-λ episode (the defaults, 50 steps) at least halves the label-1 trouser rate and
    keeps every other digit within 5 points (a smaller sample than docs/vae.md)."""
    env = gym.make(VAE_ID).unwrapped
    env.reset(seed=0)
    for _ in range(env.horizon):
        *_, term, trunc, info = env.step(np.zeros(1, np.float32))
    assert trunc and not term
    clf = load_classifier("micro")
    labels = torch.cat([torch.ones(400, dtype=torch.long),
                        torch.tensor([d for d in range(10) if d != 1]).repeat_interleave(200)])
    noise = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(11))
    before = label_rates(clf, load_pretrained("micro", model="cvae").generate(labels, noise), labels)
    after = label_rates(clf, env.model.generate(labels, noise), labels)
    assert before[1].confident_trouser >= 0.05
    assert after[1].confident_trouser <= 0.5 * before[1].confident_trouser
    drops = {d: before[d].accuracy - after[d].accuracy for d in before if d != 1}
    assert max(drops.values()) <= 0.05, drops
    assert info["outcome"]["forget"] < info["outcome"]["reference"]["forget"]


def test_online_save_and_load_resume_the_vae_run(tmp_path):
    kw = {"horizon": 4, "mode": "online", "outcome": False}
    a = gym.make(VAE_ID, **kw).unwrapped
    a.reset(seed=3)
    for _ in range(2):
        a.step(np.array([0.3], np.float32))
    a.save(tmp_path / "run.pt")
    b = gym.make(VAE_ID, **kw).unwrapped
    b.load(tmp_path / "run.pt")
    ra = [a.step(np.array([-0.5], np.float32))[1] for _ in range(2)]  # to the window's end (t = 4)
    rb = [b.step(np.array([-0.5], np.float32))[1] for _ in range(2)]
    assert ra == rb
    ddpm = gym.make("unlearn_gym:SISSUnlearnMicro-v0", **kw).unwrapped
    with pytest.raises(ValueError, match="model"):
        ddpm.load(tmp_path / "run.pt")
    assert isinstance(unlearn_gym.pretrained.load_model_file(tmp_path / "run.pt"), ConditionalVAE)


# ---------------------------------------------------------------------------------------------
# methods and evaluation


def test_adaptive_vi_learns_lambda_through_the_vae_siss_loss():
    from unlearn_gym.methods import run

    result = run("adaptive-vi", preset="micro", steps=5, seed=0, model="cvae")
    assert result.params["model"] == "cvae" and isinstance(result.model, ConditionalVAE)
    assert all(row["phi_grad_norm_siss"] > 0 for row in result.log)
    with pytest.raises(ValueError, match="methods for 'cvae': adaptive-vi, naive-deletion, siss, siss-no-is"):
        run("erasediff", preset="micro", steps=1, model="cvae")


def test_evaluation_suite_samples_the_prior():
    from unlearn_gym.eval.evaluate import evaluate

    model = load_pretrained("micro", model="cvae")
    report = evaluate(model, model, "micro", samples_per_label=10, forget_samples=20, progress=False,
                      kid_subsets=5)
    assert report.config["model_sampler"] == "vae prior"
    md = report.to_markdown()  # the report says how the VAE was sampled: from its prior, not by DDIM
    assert "VAE prior samples" in md and "DDIM 50 steps" not in md
    assert report.summary["retain_ssim"] == pytest.approx(1.0)
    assert 0.0 <= report.summary["trouser_rate"] <= 1.0


def test_reports_label_how_the_samples_were_drawn():
    from unlearn_gym.benchmark.report import _header
    from unlearn_gym.eval.report import sampler_text

    assert sampler_text({"model_sampler": "ddim", "steps": 50}) == "DDIM 50 steps (eta 0)"
    assert "DDIM 50" not in sampler_text({"model_sampler": "vae prior", "steps": 50})
    assert "prior" in sampler_text({"model_sampler": "vae prior", "steps": 50})
    settings = {"eval_samples": 4, "eval_forget_samples": None, "eval_steps": 25, "eval_seed": 0,
                "agent_timesteps": 64}
    run = {"executor": "local", "workers": 1, "computed": 1, "wall_s": 1.0, "command": "x"}
    for model, want, unwanted in (("cvae", "VAE prior samples", "DDIM-25"), ("ddpm", "DDIM-25", "prior")):
        r = {"config": {"seed0": 0, "seeds": 1, "quick": False, "model": model, "settings": settings},
             "run": run, "runs": [run], "date": "today"}
        head = "\n".join(_header(r))
        assert want in head and unwanted not in head.split("Directions")[0].split("Evaluation:")[1]
