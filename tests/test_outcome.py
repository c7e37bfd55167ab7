"""The outcome score, the outcome reward with its shaping, and the no-training policies (micro)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import unlearn_gym  # noqa: F401
from unlearn_gym.envs.outcome import OutcomeConfig, OutcomeScorer
from unlearn_gym.policies import (
    ConstantPolicy,
    CosineSchedule,
    LinearSchedule,
    RandomPolicy,
    StepSchedule,
    rollout,
)
from unlearn_gym.pretrained import load_classifier, load_pretrained

MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
SMALL = {"n_forget": 32, "n_per_retain": 4, "steps": 4}


def _obs(progress: float) -> np.ndarray:
    return np.array([0, 0, 0, 0, 0.5, progress], dtype=np.float32)


@pytest.fixture(scope="module")
def scorer() -> OutcomeScorer:
    return OutcomeScorer(load_pretrained("micro", ratio=0.5), load_classifier("micro"), "trousers",
                         OutcomeConfig(**SMALL))


def test_reference_scores_zero_and_is_repeatable(scorer):
    model = load_pretrained("micro", ratio=0.5)
    a, b = scorer.score(model), scorer.score(model)
    assert a == b  # common random numbers: the same model gets the same score
    assert a["outcome"] == 0.0 and a["forget_removed"] == 0.0 and a["retain_drop"] == 0.0
    assert a["reference"]["forget"] > 0  # the heavy model draws trousers for label 1
    assert 0 < a["forget_se"] < 0.2 and a["outcome_se"] == pytest.approx(a["forget_se"] / a["reference"]["forget"])


@pytest.mark.parametrize(("forget", "retain", "one", "expected"), [
    (0.0, None, None, 1.0),            # everything forgotten, nothing lost
    (0.5, None, None, 0.5),            # half forgotten
    (0.0, -0.05, None, 1.0),           # a drop within tolerance costs nothing
    (0.0, -0.075, None, 0.5),          # half a tolerance beyond costs half a unit
    (0.0, None, -0.10, 0.0),           # the one-rate counts as retain for trousers
    (0.0, -0.5, None, -1.0),           # destroyed: clipped at -1
    (2.0, None, None, -1.0),           # more trousers than before
])
def test_outcome_formula(scorer, monkeypatch, forget, retain, one, expected):
    ref = scorer.reference
    m = {"forget": forget * ref["forget"], "one_rate": ref["one_rate"] + (one or 0.0),
         "retain_mean": ref["retain_mean"] + (retain or 0.0), "retain_worst": 0.5, "per_label": {},
         "per_label_argmax": {}}
    monkeypatch.setattr(scorer, "measure", lambda model: m)
    assert scorer.score(None)["outcome"] == pytest.approx(expected)


def test_outcome_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_forget"):
        OutcomeConfig(n_forget=0)
    with pytest.raises(ValueError, match="tolerance"):
        OutcomeConfig(tolerance=0.0)


def test_episode_end_info_has_outcome_and_erase_task_scores_the_digit():
    env = gym.make(MICRO, horizon=3, batch_size=8, outcome_config=SMALL).unwrapped
    r = rollout(env, ConstantPolicy(0.0), seed=0)
    out = r["info"]["outcome"]
    assert r["steps"] == 3 and out["task"] == "trousers"
    for k in ("outcome", "forget", "retain_mean", "retain_worst", "one_rate", "forget_se", "reference", "version"):
        assert k in out
    # confident accuracy never exceeds plain accuracy
    assert all(out["retain_per_label"][d] <= out["retain_per_label_argmax"][d] for d in out["retain_per_label"])
    assert -1.0 <= out["outcome"] <= 1.0
    env = gym.make(MICRO, task="erase-3", horizon=2, batch_size=8, outcome_config=SMALL).unwrapped
    out = rollout(env, ConstantPolicy(0.0), seed=0)["info"]["outcome"]
    assert env.scorer.forget_label == 3 and out["task"] == "erase-3" and math.isnan(out["one_rate"])
    assert out["reference"]["forget"] > 0.5  # the pretrained model draws threes


def test_outcome_info_passes_gymnasium_vector_info_wrappers():
    """Per-label dicts are keyed by strings: DictInfoToList (RLlib's env runner uses it) and JSON accept them."""
    from gymnasium.wrappers.vector import DictInfoToList

    envs = DictInfoToList(gym.make_vec(MICRO, num_envs=1, vectorization_mode="sync", horizon=2, batch_size=8,
                                       outcome_config=SMALL))
    envs.reset(seed=0)
    for _ in range(2):
        _, _, _, truncated, infos = envs.step(np.zeros((1, 1), dtype=np.float32))
    assert truncated[0] and set(infos[0]["outcome"]["retain_per_label"]) == {"0", *map(str, range(2, 10))}
    envs.close()


def test_outcome_reward_is_terminal_and_shaping_telescopes():
    kw = dict(horizon=4, batch_size=8, outcome_config=SMALL, reward="outcome", beta=0.0)
    env = gym.make(MICRO, **kw).unwrapped
    r = rollout(env, ConstantPolicy(0.5), seed=1)
    assert r["rewards"][:-1] == [0.0, 0.0, 0.0]
    assert r["rewards"][-1] == pytest.approx(r["info"]["outcome"]["outcome"])
    shaped = gym.make(MICRO, shaping=2.0, **kw).unwrapped
    rs = rollout(shaped, ConstantPolicy(0.5), seed=1)
    assert rs["lambdas"] == r["lambdas"]  # same updates: shaping only changes the rewards
    total_shaping = rs["return"] - r["return"]
    assert total_shaping == pytest.approx(-shaped.origin.phi, rel=1e-5)  # Φ(end) = 0: telescopes to -Φ(θ_0)
    assert any(x != 0.0 for x in rs["rewards"][:-1])


def test_paper_reward_is_reported_whatever_the_reward():
    kw = dict(horizon=4, batch_size=8, outcome_config=SMALL)
    siss = rollout(gym.make(MICRO, reward="siss", **kw).unwrapped, ConstantPolicy(0.3), seed=2)
    outcome = rollout(gym.make(MICRO, reward="outcome", **kw).unwrapped, ConstantPolicy(0.3), seed=2)
    assert siss["paper_return"] == pytest.approx(siss["return"])
    assert outcome["paper_return"] == pytest.approx(siss["return"])  # same updates, the paper's reward


def test_outcome_reward_argument_checks():
    with pytest.raises(ValueError, match="outcome=True"):
        gym.make(MICRO, reward="outcome", outcome=False)
    with pytest.raises(ValueError, match="shaping"):
        gym.make(MICRO, reward="siss", shaping=1.0)
    with pytest.raises(ValueError, match="shaping"):
        gym.make(MICRO, reward="outcome", shaping=float("nan"))


def test_outcome_off_means_no_scorer():
    env = gym.make(MICRO, horizon=2, batch_size=8, outcome=False).unwrapped
    r = rollout(env, ConstantPolicy(0.0), seed=0)
    assert "outcome" not in r["info"]
    with pytest.raises(RuntimeError, match="outcome=False"):
        env.score()


def test_schedules():
    assert LinearSchedule(1.0, -1.0)(_obs(0.0))[0] == 1.0
    assert LinearSchedule(1.0, -1.0)(_obs(0.5))[0] == 0.0
    assert CosineSchedule(1.0, -1.0)(_obs(1.0))[0] == pytest.approx(-1.0)
    assert StepSchedule(0.5, -0.5, 0.3)(_obs(0.29))[0] == 0.5
    assert StepSchedule(0.5, -0.5, 0.3)(_obs(0.3))[0] == -0.5
    np.testing.assert_allclose(ConstantPolicy([0.2, -0.4], dim=2)(_obs(0.7), 2), [0.2, -0.4], rtol=1e-6)
    np.testing.assert_array_equal(ConstantPolicy(3.0)(_obs(0.0)), [1.0])  # clipped to the box
    batch, state = LinearSchedule(1.0, -1.0).predict(np.stack([_obs(0.0), _obs(1.0)]))
    assert state is None and batch.shape == (2, 1) and batch[:, 0].tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="component"):
        ConstantPolicy([0.1, 0.2, 0.3])(_obs(0.0), 2)
    a, b = RandomPolicy(seed=3), RandomPolicy(seed=3)
    assert [a(_obs(0.0))[0] for _ in range(3)] == [b(_obs(0.0))[0] for _ in range(3)]
