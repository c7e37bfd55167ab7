"""The outcome score sees retain damage on the VAE track (issue 20, docs/vae.md "Does the outcome see retain damage?").

A VAE with noised weights (every tensor w -> w + σ·std(w)·N(0, 1), the damage ladder of
``benchmarks/vae_outcome_validity.py --damage``) must score below doing nothing, θ_0 itself scores 0
with no retain drop, and the version the env reports is the module's.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest
import torch
from torch import nn

import unlearn_gym  # noqa: F401
from unlearn_gym.envs.outcome import OUTCOME_VERSION
from unlearn_gym.policies import ConstantPolicy, rollout


def noised(model: nn.Module, sigma: float, seed: int) -> nn.Module:
    """A copy of ``model`` whose weight tensors get Gaussian noise of ``sigma`` times their own std.

    :param model: the model to damage (left unchanged).
    :param sigma: noise scale relative to each tensor's standard deviation.
    :param seed: seed of the noise.
    """
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.numel() > 1:
                p.add_(sigma * p.std() * torch.randn(p.shape, generator=gen))
    return out


@pytest.fixture(scope="module")
def env():
    return gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance="vae-micro-scale-b16-h10").unwrapped


def test_reference_vae_has_no_retain_drop(env):
    out = env.scorer.score(env.model)
    assert out["outcome"] == 0.0
    assert out["retain_drop"] == pytest.approx(0.0, abs=1e-12)
    assert out["version"] == OUTCOME_VERSION


@pytest.mark.parametrize("seed", [1000, 1001])
def test_noised_vae_scores_below_doing_nothing(env, seed):
    theta0 = env.scorer.score(env.model)
    out = env.scorer.score(noised(env.model, 0.5, seed))
    assert out["retain_drop"] > 2 * env.scorer.config.tolerance
    assert out["outcome"] < theta0["outcome"]
    assert out["outcome"] <= -0.5


def test_episode_info_reports_the_version(env):
    r = rollout(env, ConstantPolicy([0.0, 0.0], dim=2), seed=0)
    assert r["info"]["outcome"]["version"] == OUTCOME_VERSION
