"""One source of truth: the run settings' resolver, the env's state object, no global-RNG side effects."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from unlearn_gym.envs.encoding import FEATURES, OBS_NAMES, PROGRESS_INDEX, observation_table
from unlearn_gym.envs.settings import EnvSettings, resolve_env_settings
from unlearn_gym.envs.siss_env import SISSUnlearnEnv
from unlearn_gym.methods import build_setup, run
from unlearn_gym.presets import get_preset
from unlearn_gym.settings import resolve_run_settings
from unlearn_gym.vae import cvae_config

MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
SMALL = {"n_forget": 8, "n_per_retain": 2, "steps": 2}


def test_defaults_are_task_and_family_aware():
    p = get_preset("micro")
    t = resolve_run_settings("micro", "trousers")
    assert (t.lr, t.batch_size, t.rule, t.scale, t.horizon) == (
        p.unlearn_lr, p.unlearn_batch, p.unlearn_rule, p.unlearn_scale, p.horizon)
    e = resolve_run_settings("micro", "erase-7")
    assert (e.lr, e.batch_size, e.scale) == (p.erase_lr, p.erase_batch, p.erase_scale)
    v = resolve_run_settings("micro", "trousers", "cvae")
    assert (v.lr, v.scale) == (cvae_config(p).unlearn_lr, cvae_config(p).unlearn_scale)
    assert resolve_run_settings("micro", lr=None).lr == p.unlearn_lr  # None means "the default"


def test_env_method_and_benchmark_resolve_the_same_defaults():
    from unlearn_gym.benchmark.entries import preset_instance

    for task in ("trousers", "erase-7"):
        env = resolve_env_settings("micro", task)
        setup = build_setup("micro", task)
        inst = preset_instance("micro", task)
        for key in ("lr", "batch_size", "rule", "scale", "horizon"):
            assert getattr(env, key) == getattr(setup.settings, key) == getattr(inst, key), (task, key)


def test_resolver_refuses_bad_settings():
    with pytest.raises(ValueError, match="needs its constant"):
        resolve_run_settings("micro", rule="rescale")
    assert resolve_run_settings("micro", rule="rescale", scale=5.0).scale == 5.0
    with pytest.raises(ValueError, match="unknown run setting"):
        resolve_run_settings("micro", learning_rate=1e-3)
    with pytest.raises(ValueError, match="unknown env argument"):
        resolve_env_settings("micro", horizn=3)
    with pytest.raises(ValueError, match="unknown task"):
        resolve_run_settings("micro", "erase-x")
    with pytest.raises(ValueError, match="horizon must be an integer"):
        resolve_run_settings("micro", horizon=0)


@pytest.mark.parametrize("task", ["trousers", "erase-7"])
def test_static_siss_is_the_env_with_a_constant_action(task):
    steps, seed = 3, 11
    result = run("siss", preset="micro", task=task, steps=steps, seed=seed, lam=0.5, batch_size=8)
    env = SISSUnlearnEnv(preset="micro", task=task, batch_size=8, outcome=False)
    env.reset(seed=0)
    env.state.generator.manual_seed(seed)  # the method's generator
    for _ in range(steps):
        env.step(np.zeros(1, np.float32))  # action 0 is λ = 0.5
    mine, theirs = env.model.state_dict(), result.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert result.params["lr"] == env.settings.lr and result.params["scale"] == env.settings.scale


def _roll(env, actions):
    out = []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((obs.copy(), r))
        if term or trunc:
            obs, _ = env.reset()
            out.append((obs.copy(), None))
    return out


def test_shaped_online_run_resumes_bit_identically(tmp_path):
    kw = dict(mode="online", reward="outcome", shaping=1.0, horizon=6, batch_size=8, outcome_config=SMALL)
    actions = [np.array([v], np.float32) for v in np.linspace(-0.9, 0.9, 12)]
    a = gym.make(MICRO, **kw).unwrapped
    a.reset(seed=3)
    _roll(a, actions[:4])  # mid-window: t = 4 of 6
    a.save(tmp_path / "run.pt")
    straight = _roll(a, actions[4:])
    b = gym.make(MICRO, **kw).unwrapped
    b.load(tmp_path / "run.pt")
    resumed = _roll(b, actions[4:])
    assert len(straight) == len(resumed)
    for (o1, r1), (o2, r2) in zip(straight, resumed):
        assert np.array_equal(o1, o2) and r1 == r2
    assert any(r not in (None, 0.0) for _, r in resumed)


def test_load_refuses_a_run_with_other_shaping(tmp_path):
    kw = dict(mode="online", reward="outcome", horizon=4, batch_size=8, outcome_config=SMALL)
    a = gym.make(MICRO, shaping=1.0, **kw).unwrapped
    a.reset(seed=0)
    a.step(np.zeros(1, np.float32))
    a.save(tmp_path / "run.pt")
    b = gym.make(MICRO, shaping=2.0, **kw).unwrapped
    with pytest.raises(ValueError, match="shaping"):
        b.load(tmp_path / "run.pt")


def test_building_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    env = gym.make(MICRO, outcome_config=SMALL)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    gym.make(MICRO, instances="default:train", outcome_config=SMALL).reset(seed=0)
    build_setup("micro", "trousers", seed=0)
    run("adaptive-vi", preset="micro", steps=1, batch_size=8)
    assert torch.equal(before, torch.get_rng_state())


def test_the_feature_table_drives_spaces_docs_and_policies():
    env = SISSUnlearnEnv(preset="micro", outcome=False)
    assert env.observation_space.shape == (len(FEATURES),)
    assert list(env.observation_space.low) == [f.low for f in FEATURES]
    assert observation_table().splitlines()[2] in SISSUnlearnEnv.__doc__
    assert "{observation_table}" not in SISSUnlearnEnv.__doc__
    from unlearn_gym.policies import PROGRESS_INDEX as policy_index

    assert policy_index == PROGRESS_INDEX == OBS_NAMES.index("progress")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert obs[PROGRESS_INDEX] == pytest.approx(1 / env.horizon)


def test_settings_object_builds_the_env():
    s = resolve_env_settings("micro", horizon=3, outcome=False)
    env = SISSUnlearnEnv(settings=s)
    assert env.settings is s and isinstance(env.settings, EnvSettings) and env.config["horizon"] == 3
    with pytest.raises(ValueError, match="either settings or keyword"):
        SISSUnlearnEnv(settings=s, horizon=4)


def test_unitless_observation_mode_passes_both_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from unlearn_gym.envs.encoding import UNITLESS_FEATURES

    env = gym.make(MICRO, instance="micro-heavy-scale-b8-h30", observation="unitless", outcome_config=SMALL).unwrapped
    assert env.observation_space.shape == (len(UNITLESS_FEATURES),)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    obs, _ = env.reset(seed=0)
    assert np.allclose(obs[:4], 0.0)  # at θ_0 every ratio is 1
    assert obs[PROGRESS_INDEX] == 0.0
    obs, *_ = env.step(np.array([0.0, 1.0], np.float32))  # the largest forget scale: 10x the instance's
    names = [f.name for f in UNITLESS_FEATURES]
    assert obs[names.index("log10_scale_rel")] == pytest.approx(1.0)
    assert -1.0 <= obs[names.index("grad_cosine")] <= 1.0
    assert obs[names.index("log2_batch")] == pytest.approx(3.0)  # B = 8
    with pytest.raises(ValueError, match="observation must be one of"):
        resolve_env_settings("micro", observation="raw")
