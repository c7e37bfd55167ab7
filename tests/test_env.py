"""SISSUnlearnEnv: checkers, determinism, resets, online checkpoints, robustness, vectorisation.

Everything here runs on the ``micro`` preset (tests that need ``tiny`` are marked ``slow``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unlearn_gym  # noqa: F401  (registers the ids)
from unlearn_gym.envs import ENV_IDS
from unlearn_gym.envs.siss_env import SISSUnlearnEnv
from unlearn_gym.pretrained import asset_path

MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
FAST = {"batch_size": 16, "horizon": 6}
HAS_TINY = asset_path("ddpm", "tiny").is_file()


def _hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _make(**kw) -> SISSUnlearnEnv:
    return gym.make(MICRO, **{**FAST, **kw}).unwrapped


def _rollout(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    out = [(obs.copy(), info)]
    for a in actions:
        obs, r, term, trunc, info = env.step(np.asarray(a, dtype=np.float32))
        out.append((obs.copy(), r, term, trunc, info))
        if term or trunc:
            obs, info = env.reset()
            out.append((obs.copy(), info))
    return out


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


# ---------------------------------------------------------------------------------------------
# registration and checkers


def test_registered_with_plain_kwargs():
    for env_id, kwargs in ENV_IDS.items():
        spec = gym.spec(env_id)
        assert spec.kwargs == kwargs
        assert all(isinstance(v, (str, int, float, bool, type(None))) for v in spec.kwargs.values())


def test_make_without_prior_import():
    code = (
        "import gymnasium as gym, sys; e = gym.make('unlearn_gym:SISSUnlearnMicro-v0', batch_size=8);"
        "o, _ = e.reset(seed=0); assert o.shape == (6,); assert 'unlearn_gym' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _check_both(env) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
        sb3_check_env(env, warn=True)
    messages = [str(w.message) for w in caught]
    assert messages == []


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_checkers_pass_without_warnings_fast(env_id):
    """All three ids (their mode and settings) with the model swapped for ``micro``."""
    _check_both(gym.make(f"unlearn_gym:{env_id}", preset="micro", **FAST).unwrapped)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TINY, reason="the tiny DDPM is not shipped in this checkout")
@pytest.mark.parametrize("env_id", [i for i, kw in ENV_IDS.items() if kw["preset"] == "tiny"])
def test_checkers_pass_without_warnings_tiny(env_id):
    _check_both(gym.make(f"unlearn_gym:{env_id}").unwrapped)


def test_checkers_pass_with_options():
    _check_both(_make(action="lambda+scale", state="exact", reward="probe", render_mode="rgb_array"))


# ---------------------------------------------------------------------------------------------
# determinism and resets


ACTIONS = [[0.0], [0.7], [-0.9], [1.0], [0.2], [-0.3], [0.5], [0.0]]


def test_same_seed_same_actions_identical():
    a, b = _make(), _make()
    ra, rb = _rollout(a, ACTIONS, seed=3), _rollout(b, ACTIONS, seed=3)
    _same(ra, rb)
    _same(_rollout(a, ACTIONS, seed=3), ra)  # and again on a used env
    rc = _rollout(b, ACTIONS, seed=4)
    assert not np.array_equal(rc[1][0], ra[1][0])  # the seed matters


def test_reset_restores_theta0_exactly():
    env = _make()
    env.reset(seed=0)
    h0 = _hash(env.model)
    for a in ACTIONS[:4]:
        env.step(np.array(a, dtype=np.float32))
    assert _hash(env.model) != h0
    assert len(env.optimizer.state) > 0
    obs, info = env.reset()
    assert _hash(env.model) == h0 and len(env.optimizer.state) == 0
    assert info["restored"] and obs[4] == 0.5 and obs[5] == 0.0


def test_info_contents_and_reward_terms():
    env = _make(beta=0.3)
    env.reset(seed=0)
    env.step(np.array([0.0], dtype=np.float32))
    _, r, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))
    assert math.isclose(info["lambda"], 0.95) and not term and not trunc
    assert math.isclose(info["reward_terms"]["smoothness"], -0.3 * 0.45**2)
    assert math.isclose(sum(info["reward_terms"].values()), r)
    assert math.isclose(info["reward_terms"]["loss"], -info["loss"])
    for key in ("L_r", "L_f", "L_x", "L_a", "grad_norm_x", "grad_norm_a", "w_x_mean", "w_a_ess",
                "retain_term", "forget_term", "forget_coef", "step", "global_step", "diverged"):
        assert key in info
    assert info["step"] == 2 and info["global_step"] == 2


def test_observation_encodes_the_update():
    env = _make()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    expected = [math.log10(info[k]) for k in ("L_r", "L_f", "grad_norm_r", "grad_norm_f")]
    np.testing.assert_allclose(obs[:4], expected, rtol=1e-5)
    assert math.isclose(obs[4], 0.05, rel_tol=1e-6) and math.isclose(obs[5], 1 / 6, rel_tol=1e-6)


def test_truncates_at_horizon():
    env = _make()
    env.reset(seed=0)
    for i in range(6):
        _, _, term, trunc, _ = env.step(np.zeros(1, dtype=np.float32))
        assert trunc == (i == 5) and not term


# ---------------------------------------------------------------------------------------------
# online mode


def test_online_persists_across_resets():
    env = _make(mode="online", horizon=3)
    env.reset(seed=0)
    for _ in range(3):
        *_, trunc, info = env.step(np.array([0.4], dtype=np.float32))
    assert trunc
    h = _hash(env.model)
    obs, info = env.reset()
    assert not info["restored"] and _hash(env.model) == h
    assert obs[5] == 0.0 and math.isclose(obs[4], info["lambda"], rel_tol=1e-6) and info["global_step"] == 3
    *_, info = env.step(np.array([0.4], dtype=np.float32))
    assert info["step"] == 1 and info["global_step"] == 4
    env.reset(seed=0)  # an explicit seed starts a new run from θ_0
    assert env.global_step == 0 and _hash(env.model) == _hash(_make(mode="online").model)


def test_online_save_load_continues_identically(tmp_path):
    actions = [[0.3], [-0.5], [0.9], [0.0], [-1.0], [0.6], [0.1], [0.8]]
    a = _make(mode="online", horizon=4)
    _rollout(a, actions[:5], seed=11)
    a.save(tmp_path / "run.pt")
    cont_a = [a.step(np.array(x, np.float32)) for x in actions[5:8]]
    b = _make(mode="online", horizon=4)
    b.load(tmp_path / "run.pt")
    cont_b = [b.step(np.array(x, np.float32)) for x in actions[5:8]]
    _same(cont_a, cont_b)
    assert cont_b[-1][3] and cont_b[-1][4]["global_step"] == 8  # second window of 4 ends
    oa, _ = a.reset()
    ob, _ = b.reset()
    np.testing.assert_array_equal(oa, ob)
    _same([(a.step(np.array([0.2], np.float32)))], [(b.step(np.array([0.2], np.float32)))])
    assert _hash(a.model) == _hash(b.model)
    with pytest.raises(ValueError, match="other settings"):
        _make(mode="online", horizon=4, lr=1e-3).load(tmp_path / "run.pt")


# ---------------------------------------------------------------------------------------------
# robustness


@functools.cache
def _robust_env() -> SISSUnlearnEnv:
    return _make(batch_size=8, horizon=4)


_component = st.one_of(
    st.floats(-1, 1, width=32),
    st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False),
    st.sampled_from([math.inf, -math.inf, 5.0, -7.5, 1.0, -1.0]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), actions=st.lists(_component, min_size=1, max_size=4))
def test_random_actions_never_give_nan(seed, actions):
    env = _robust_env()
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for a in actions:
        obs, r, term, trunc, info = env.step(np.array([a], dtype=np.float64))
        assert not np.isnan(obs).any() and env.observation_space.contains(obs)
        assert math.isfinite(r) and env.config["lambda_min"] <= info["lambda"] <= env.config["lambda_max"]
        if term or trunc:
            obs, _ = env.reset()


def test_nan_and_bad_shape_actions_raise():
    env = _make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        env.step(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError):
        _make(mode="sometimes")
    with pytest.raises(ValueError):
        _make(task="erase-3", pairing="same-label")


def test_forced_divergence_terminates_and_restores():
    env = _make(lr=1e3)
    env.reset(seed=0)
    h0 = _hash(env.model)
    for _ in range(6):
        obs, r, term, trunc, info = env.step(np.zeros(1, dtype=np.float32))
        assert np.isfinite(obs).all() and math.isfinite(r)
        if term:
            break
    assert term and info["diverged"] and not trunc
    env.reset()
    assert _hash(env.model) == h0
    online = _make(lr=1e3, mode="online")
    online.reset(seed=0)
    while not online.step(np.zeros(1, dtype=np.float32))[2]:
        pass
    assert online.reset()[1]["restored"] and _hash(online.model) == h0


# ---------------------------------------------------------------------------------------------
# options


def test_lambda_plus_scale_action():
    env = _make(action="lambda+scale", rule="ratio", scale=0.1)
    assert env.action_space.shape == (2,)
    env.reset(seed=0)
    for a1, expected in ((0.0, 0.1), (1.0, 1.0), (-1.0, 0.01), (np.inf, 1.0)):
        *_, info = env.step(np.array([0.0, a1]))
        assert math.isclose(info["scale"], expected, rel_tol=1e-9) and math.isclose(info["lambda"], 0.5)
        assert math.isclose(info["forget_step_norm"], expected * info["grad_norm_x"], rel_tol=1e-6)


def test_probe_reward_and_exact_state():
    env = _make(reward="probe", state="exact")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([0.3], dtype=np.float32))
    # the probe reward is the loss of the updated model on fixed draws: recomputing gives the same
    assert info["reward_terms"]["loss"] == -env.probe.loss(env.model, info["lambda"])
    exact = info["exact_state"]
    np.testing.assert_allclose(obs[:4], [math.log10(exact[k]) for k in ("L_r", "L_f", "grad_norm_r", "grad_norm_f")],
                               rtol=1e-5)


def test_erase_task_and_same_label_pairing():
    env = _make(task="erase-7")
    assert (env.sampler.forget_labels == 7).all() and not (env.sampler.retain_labels == 7).any()
    env.reset(seed=0)
    assert env.step(np.zeros(1, dtype=np.float32))[0].shape == (6,)
    env = _make(pairing="same-label")
    env.reset(seed=0)
    *_, info = env.step(np.zeros(1, dtype=np.float32))
    assert "L_other" in info


def test_render_rgb_array():
    env = _make(render_mode="rgb_array", render_cols=4, render_steps=3)
    env.reset(seed=0)
    img = env.render()
    side = 8 * 4  # micro is upscaled 4x
    assert img.dtype == np.uint8 and img.shape == (10 * (side + 1) + 1, 4 * (side + 1) + 1, 3)
    assert img.std() > 0


# ---------------------------------------------------------------------------------------------
# vectorisation and pickling


def test_pickle_roundtrip_continues_identically():
    import pickle

    env = _make()
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    _same([env.step(np.array([0.3], np.float32))], [clone.step(np.array([0.3], np.float32))])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    venv = gym.make_vec(MICRO, num_envs=4, vectorization_mode=mode, batch_size=8, horizon=3)
    try:
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (4, 6)
        rewards = []
        for _ in range(5):  # crosses the horizon: autoreset
            obs, r, _, trunc, _ = venv.step(np.zeros((4, 1), dtype=np.float32))
            rewards.append(r)
        assert np.isfinite(obs).all() and len(set(np.round(rewards[0], 8))) == 4  # seeds 0..3 differ
        assert trunc.sum() == 0 and np.all(rewards[3] == 0)  # step 4 was the autoreset step
    finally:
        venv.close()


def test_sb3_subproc_vec_env():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(MICRO, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                        env_kwargs={"batch_size": 8, "horizon": 3})
    try:
        obs = venv.reset()
        for _ in range(4):
            obs, r, *_ = venv.step(np.zeros((2, 1), dtype=np.float32))
        assert obs.shape == (2, 6) and np.isfinite(r).all()
    finally:
        venv.close()
