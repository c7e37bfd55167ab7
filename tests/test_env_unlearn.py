"""It must actually unlearn: a constant-λ episode of the env forgets the trousers and keeps the digits.

The acceptance check of the env issue on ``micro`` (CI) and on ``tiny`` (slow): with action 0
(λ = 0.5) for the default horizon, label-1 samples are confident trousers at most half as often as
for the pretrained model, and every other digit's accuracy stays within 5 points (samples of both
models from the same initial noise, scored by the shipped classifier).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import unlearn_gym  # noqa: F401
from unlearn_gym.diffusion import NoiseSchedule, sample
from unlearn_gym.eval.rates import label_rates, summarize_rates
from unlearn_gym.pretrained import asset_path, load_classifier, load_pretrained


def _score(model, classifier, n_one: int, per_label: int):
    others = torch.tensor([d for d in range(10) if d != 1]).repeat_interleave(per_label)
    labels = torch.cat([torch.ones(n_one, dtype=torch.long), others])
    res = classifier.resolution
    noise = torch.randn(len(labels), 1, res, res, generator=torch.Generator().manual_seed(123))
    rates = label_rates(classifier, sample(model, NoiseSchedule(), labels, steps=50, noise=noise), labels)
    return summarize_rates(rates), {d: r.accuracy for d, r in rates.items()}


def _check(env_id: str, n_one: int, per_label: int) -> None:
    env = gym.make(env_id).unwrapped
    preset = env.config["preset"]
    env.reset(seed=0)
    for _ in range(env.horizon):
        *_, term, trunc, info = env.step(np.zeros(1, dtype=np.float32))
        assert not term
    assert trunc and info["step"] == env.horizon
    clf = load_classifier(preset)
    before, acc0 = _score(load_pretrained(preset), clf, n_one, per_label)
    after, acc1 = _score(env.model, clf, n_one, per_label)
    assert before["trouser_rate"] >= 0.02, before  # there is something to forget
    assert after["trouser_rate"] <= 0.5 * before["trouser_rate"], (before, after)
    drops = {d: acc0[d] - acc1[d] for d in acc0 if d != 1}
    assert max(drops.values()) <= 0.05, drops


def test_micro_env_unlearns():
    _check("unlearn_gym:SISSUnlearnMicro-v0", n_one=500, per_label=300)


@pytest.mark.slow
@pytest.mark.skipif(not asset_path("ddpm", "tiny").is_file(), reason="the tiny DDPM is not shipped")
def test_tiny_env_unlearns():
    _check("unlearn_gym:SISSUnlearn-v0", n_one=500, per_label=200)
