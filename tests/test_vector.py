"""The native vector env (unlearn_gym.envs.vector): copy i with seed s is the single env with seed s.

Equivalence is checked against gymnasium's ``SyncVectorEnv`` of single envs (``make_vec(...,
vectorization_mode="sync")``: env i reset with seed s + i, autoreset NEXT_STEP, infos through the
same ``_add_info``), so every observation, reward, flag and info entry (outcome scores included) is
compared. Tolerance: none. The copies are stepped in a loop through the single env's own step
function, so the trajectories are bit-identical (``assert_array_equal``, NaN equal to NaN).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import unlearn_gym  # noqa: F401  (registers the ids)
from unlearn_gym.envs.vector import SISSUnlearnVectorEnv

VAE = "unlearn_gym:SISSUnlearnVAE-v0"
MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
SMALL = {"n_forget": 8, "n_per_retain": 2, "steps": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _leaves(d: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = np.asarray(v)
    return out


def _same(a, b, tol: float = 0.0) -> None:
    """Two vector-env results (tuples of arrays and an info dict) are identical (``tol`` 0), or equal
    within ``rtol = atol = tol`` in their floats (flags, counts and names still exactly)."""
    assert len(a) == len(b)
    ia, ib = _leaves(a[-1]), _leaves(b[-1])
    assert sorted(ia) == sorted(ib)
    pairs = [*zip(a[:-1], b[:-1], [f"result {i}" for i in range(len(a) - 1)]), *((ia[k], ib[k], k) for k in ia)]
    for x, y, name in pairs:
        x, y = np.asarray(x), np.asarray(y)
        if tol and x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=tol, atol=tol, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def _actions(rng: np.random.Generator, n: int, dim: int, push: float) -> np.ndarray:
    """Different actions per copy, mostly gentle; with probability ``push`` a copy forgets as hard as it can."""
    a = rng.uniform(-1, 0.2, (n, dim)).astype(np.float32)
    a[rng.random(n) < push] = 1.0
    return a


def _compare(env_id: str, n: int, steps: int, seed, push: float = 0.3, options=None, batched=False, tol=0.0,
             **kwargs):
    """Step the native env and the sync one with the same actions; return the flags seen."""
    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", batched=batched, **kwargs)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **kwargs)
    assert isinstance(native.unwrapped, SISSUnlearnVectorEnv)
    assert native.single_observation_space == sync.single_observation_space
    assert native.single_action_space == sync.single_action_space
    assert native.observation_space == sync.observation_space and native.action_space == sync.action_space
    rng = np.random.default_rng(0)
    _same(native.reset(seed=seed, options=options), sync.reset(seed=seed, options=options))
    if batched is True:
        assert all(native.unwrapped.use_batched(b, n) for b in native.unwrapped.current)
    seen = {"terminated": np.zeros(n, int), "truncated": np.zeros(n, int), "instances": set(), "outcomes": 0}
    for _ in range(steps):
        a = _actions(rng, n, native.single_action_space.shape[0], push)
        out = native.step(a)
        _same(out, sync.step(a), tol)
        seen["terminated"] += out[2]
        seen["truncated"] += out[3]
        seen["outcomes"] += int(out[-1].get("_outcome", np.zeros(n, bool)).sum())
        seen["instances"] |= {native.unwrapped.settings(i).instance for i in range(n)}
    native.close()
    sync.close()
    return seen


@pytest.mark.parametrize(("rule", "scale"), [("ratio", 0.5), ("rescale", 5.0), ("clip", 5.0)])
def test_vae_copies_match_single_envs(rule, scale):
    # lr 0.01 and a divergence factor of 2 make a hard-forgetting copy diverge now and then
    seen = _compare(VAE, 3, 22, seed=0, rule=rule, scale=scale, lr=0.01, divergence_factor=2.0, batch_size=8,
                    horizon=6, outcome_config=SMALL)
    assert seen["terminated"].sum() >= 1 and seen["truncated"].sum() >= 1  # a divergence and a truncation
    assert seen["outcomes"] >= 2  # the outcome at each copy's episode end


def test_micro_ddpm_scale_action_matches_with_seed_list():
    seen = _compare(MICRO, 2, 20, seed=[7, 3], action="lambda+scale", lr=1e-3, divergence_factor=1.5,
                    batch_size=8, horizon=5, outcome_config=SMALL)
    assert seen["terminated"].sum() >= 1 and seen["truncated"].sum() >= 1


def test_instances_differ_per_copy_and_match():
    # vae:train holds instances of different batch sizes (8, 16) and horizons (30, 10)
    seen = _compare(VAE, 3, 24, seed=1, instances="vae:train", outcome_config=SMALL)
    assert len(seen["instances"]) == 2 and seen["truncated"].sum() >= 1


#: the batched update (torch.func) reorders float arithmetic: measured differences after 22 steps are
#: below 1e-6 (VAE) and 4e-6 (micro DDPM) in the observation; the test allows 1e-4 relative and absolute
BATCHED_TOL = 1e-4


@pytest.mark.parametrize(("env_id", "rule", "scale", "lr"), [(VAE, "ratio", 0.5, 0.01), (VAE, "rescale", 5.0, 0.01),
                                                             (VAE, "clip", 5.0, 0.01), (MICRO, "ratio", 0.5, 1e-3)])
def test_batched_update_matches_single_envs_within_tolerance(env_id, rule, scale, lr):
    seen = _compare(env_id, 3, 22, seed=0, batched=True, tol=BATCHED_TOL, rule=rule, scale=scale, lr=lr,
                    action="lambda+scale", divergence_factor=2.0 if env_id == VAE else 1.5, batch_size=8, horizon=6,
                    outcome_config=SMALL)
    assert seen["terminated"].sum() >= 1 and seen["truncated"].sum() >= 1


def test_batched_auto_threshold():
    env = gym.make_vec(VAE, num_envs=8, batch_size=8, outcome=False).unwrapped
    shared = env.current[0]
    assert env.use_batched(shared, 3) and not env.use_batched(shared, 2)
    ddpm = gym.make_vec(MICRO, num_envs=1, batch_size=64, outcome=False).unwrapped
    assert not ddpm.use_batched(ddpm.current[0], 16)  # measured to lose at batch 64
    assert not gym.make_vec(VAE, num_envs=8, batched=False, outcome=False).unwrapped.use_batched(shared, 8)


def test_online_mode_matches():
    _compare(VAE, 2, 12, seed=0, mode="online", batch_size=8, horizon=4, outcome=False)


def test_copies_do_not_talk_to_each_other():
    kw = dict(num_envs=2, batch_size=8, horizon=6, outcome=False, lr=0.05, divergence_factor=1.5)
    runs = []
    for push in (-1.0, 1.0):  # copy 1 forgets gently, then as hard as it can (and diverges)
        env = gym.make_vec(VAE, **kw)
        env.reset(seed=0)
        rows = []
        for t in range(12):
            obs, r, term, trunc, _ = env.step(np.array([[0.2 * (t % 3) - 0.2], [push]], np.float32))
            rows.append((obs[0].copy(), r[0], term[0], trunc[0]))
        runs.append((rows, env.unwrapped.states[0].model.state_dict()))
    for x, y in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k])
    # and each copy owns its parameters
    env = gym.make_vec(VAE, **kw).unwrapped
    p0, p1 = (next(s.model.parameters()) for s in env.states)
    assert p0.data_ptr() != p1.data_ptr()


def test_make_vec_modes_and_refusals():
    env = gym.make_vec(VAE, num_envs=2, batch_size=8, outcome=False)  # no mode: the vector entry point
    assert isinstance(env.unwrapped, SISSUnlearnVectorEnv)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 6) and env.observation_space.contains(obs) and info["_step"].all()
    sync = gym.make_vec(VAE, num_envs=2, vectorization_mode="sync", batch_size=8, outcome=False)
    assert isinstance(sync, gym.vector.SyncVectorEnv)
    for bad in ({"state": "exact"}, {"reward": "probe"}, {"render_mode": "rgb_array"}):
        with pytest.raises(ValueError, match='vectorization_mode="sync"'):
            gym.make_vec(VAE, num_envs=2, batch_size=8, **bad)


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3


def test_sb3_adapter_matches_dummy_vec_env():
    from stable_baselines3.common.env_util import make_vec_env

    from unlearn_gym.rl.vec import VectorEnvAdapter

    kw = dict(batch_size=8, horizon=4, lr=0.01, divergence_factor=2.0, outcome_config=SMALL)
    ours = VectorEnvAdapter(gym.make_vec(VAE, num_envs=2, **kw))
    ours.seed(3)
    ref = make_vec_env(VAE, n_envs=2, seed=3, env_kwargs=kw)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    rng, dones_seen = np.random.default_rng(0), 0
    for _ in range(10):
        a = _actions(rng, 2, 1, 0.3)
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        for x, y in zip(i1, i2):
            assert x["lambda"] == y["lambda"] and x["paper_reward"] == y["paper_reward"]
            assert ("outcome" in x) == ("outcome" in y)
            if "terminal_observation" in y:
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
                assert x["outcome"]["outcome"] == y["outcome"]["outcome"]
        dones_seen += int(d1.sum())
    assert dones_seen >= 2
    ours.close()
    ref.close()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_train_agent_on_the_batched_vec_env(tmp_path, algo):
    pytest.importorskip("yaml")
    from unlearn_gym.rl.train import Args, train

    extra = ["n_steps=64", "batch_size=64"] if algo == "ppo" else ["learning_starts=50", "batch_size=32"]
    args = Args(algo=algo, env="SISSUnlearnVAE-v0", vec_env="batched", n_envs=4, timesteps=256,
                out=str(tmp_path / algo), eval_samples=0, progress_bar=False, tensorboard=False,
                set=["env_kwargs.horizon=8", "env_kwargs.batch_size=8",
                     f"env_kwargs.outcome_config={SMALL}".replace("'", ""), *extra])
    result = train(args)
    assert result["timesteps"] >= 256 and result["training_episodes"] >= 4 * (256 // 4 // 8) - 4
    cfg = (tmp_path / algo / "config.json").read_text()
    assert '"n_envs": 4' in cfg and '"vec_env": "batched"' in cfg


def test_batched_instances_switching_bundles_match_single_envs():
    # copies draw other instances at reset (a new optimizer each time) while being batched
    seen = _compare(VAE, 4, 24, seed=2, batched=True, tol=BATCHED_TOL, instances="vae:train", outcome_config=SMALL)
    assert len(seen["instances"]) == 2 and seen["truncated"].sum() >= 1


def test_the_stack_is_the_master_copy_of_weights_and_moments():
    from unlearn_gym.envs.batched import StackedRuns
    from unlearn_gym.envs.vector import _loop_update

    env = gym.make_vec(VAE, num_envs=3, batched=True, batch_size=8, horizon=50, outcome=False).unwrapped
    env.reset(seed=0)
    env.step(np.zeros((3, 1), np.float32))
    stack = env._stack
    assert isinstance(stack, StackedRuns)
    n0 = stack.names[0]
    p1 = dict(env.states[1].model.named_parameters())[n0]
    assert p1.data_ptr() == stack.params[n0][1].data_ptr()  # a view of its slice
    state = env.states[1].optimizer.state[p1]
    assert state["exp_avg"].data_ptr() == stack.exp_avg[n0][1].data_ptr() and float(state["step"]) == 1.0
    # the loop path (torch's AdamW) updates the bound moments and step in place
    _loop_update(env.current[1], env.states[1], 0.5, env.settings(1).scale)
    assert float(stack.step[1, 0]) == 2.0 and float(stack.step[0, 0]) == 1.0
    # a restore clears the optimizer state: the next batched step starts that copy's AdamW afresh
    env.states[2].restore(env.current[2].origin)
    assert torch.equal(stack.params[n0][2], env.current[2].origin.theta[n0])
    stack.sync([2])
    assert float(stack.step[2, 0]) == 0.0 and not stack.exp_avg[n0][2].any()


def test_the_stack_takes_the_gradients_layout_and_stays_the_master_copy():
    env = gym.make_vec(VAE, num_envs=3, batched=True, batch_size=8, horizon=50, outcome=False).unwrapped
    env.reset(seed=0)
    env.step(np.zeros((3, 1), np.float32))
    stack = env._stack
    weights = [n for n in stack.names if stack.params[n].dim() == 3]
    assert weights and all(not stack.params[n].is_contiguous() for n in weights)  # linear weights: transposed
    before = {n: t.clone() for n, t in stack.params.items()}
    m_before = {n: t.clone() for n, t in stack.exp_avg.items()}
    # re-laying out (here: back to contiguous) keeps every value, every view and every binding
    stack.adopt_layout({n: torch.empty_like(t, memory_format=torch.contiguous_format) for n, t in stack.params.items()})
    for n in stack.names:
        assert stack.params[n].is_contiguous()
        assert torch.equal(stack.params[n], before[n]) and torch.equal(stack.exp_avg[n], m_before[n])
        for i, st in enumerate(env.states):
            p = dict(st.model.named_parameters())[n]
            assert p.data_ptr() == stack.params[n][i].data_ptr() and torch.equal(p, before[n][i])
            assert st.optimizer.state[p]["exp_avg_sq"].data_ptr() == stack.exp_avg_sq[n][i].data_ptr()
    # and the next batched step (gradients in the transposed layout again) matches a copy that never moved
    twin = gym.make_vec(VAE, num_envs=3, batched=True, batch_size=8, horizon=50, outcome=False).unwrapped
    twin.reset(seed=0)
    twin.step(np.zeros((3, 1), np.float32))
    a = np.full((3, 1), 0.3, np.float32)
    _same(env.step(a), twin.step(a))
    for n in stack.names:
        assert torch.equal(stack.params[n], twin._stack.params[n])


def test_copies_ending_together_are_scored_as_one_computation():
    """batched_scores=True (what "auto" does off the CPU) gives the per-copy scores: one sample may flip
    at the confidence threshold under the batched kernels, so outcomes agree within one sample."""
    kw = dict(num_envs=3, batched=True, batch_size=8, horizon=3, outcome_config=SMALL, action="lambda+scale")
    one = gym.make_vec(MICRO, batched_scores=False, **kw)
    many = gym.make_vec(MICRO, batched_scores=True, **kw)
    calls = []
    scorer = many.unwrapped.current[0].scorer
    real = scorer.score_many
    scorer.score_many = lambda models: calls.append(len(models)) or real(models)
    one.reset(seed=5)
    many.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        *_, ia = one.step(a)
        *_, ib = many.step(a)
    assert calls == [3]  # the three copies ended on the same step
    assert ia["_outcome"].all() and ib["_outcome"].all()
    np.testing.assert_allclose(ib["outcome"]["outcome"], ia["outcome"]["outcome"], atol=2 / SMALL["n_forget"] + 1e-9)
    assert gym.make_vec(MICRO, num_envs=1, outcome=False).unwrapped.batched_scores == "auto"


def test_merged_infos_are_gymnasiums_add_info():
    """The vector env merges its copies' infos key by key: the same arrays, dtypes and masks as
    gymnasium's ``_add_info`` copy by copy (keys missing in some copies, nested dicts, arrays, objects)."""
    env = gym.make_vec(VAE, num_envs=4, batch_size=8, outcome=False).unwrapped
    infos = [{"step": 1, "lambda": 0.5, "ok": True, "stats": {"L_x": 1.0, "w": np.ones(2)}, "name": "a"},
             {"lambda": 2, "outcome": {"outcome": 0.25, "instance": {"n": "x"}}, "step": 3},
             {"step": 2.7, "mixed": {"d": 1}, "ok": False, "name": ("t", 1)},
             {"mixed": 5.0, "stats": {"w": np.zeros(2)}}]
    envs = [0, 1, 3]
    ref: dict = {}
    for i, info in zip(envs, infos[:3]):
        ref = env._add_info(ref, info, i)
    ours = env._merge_infos(infos[:3], envs)
    assert list(ours) == list(ref)
    la, lb = _leaves(ours), _leaves(ref)
    assert list(la) == list(lb)
    for k in la:
        assert la[k].dtype == lb[k].dtype, k
        np.testing.assert_array_equal(la[k], lb[k], err_msg=k)
    # a key that is a dict in one copy and a number in a later one: whatever _add_info makes of it
    mixed = env._add_info(env._add_info({}, infos[2], 0), infos[3], 1)
    assert str(env._merge_infos(infos[2:], [0, 1])) == str(mixed)


@pytest.mark.parametrize("pairing", ["drawn", "same-label"])
def test_sample_many_is_each_generators_sample(pairing):
    """The batched update gathers all runs' batches at once: the same numbers as one sample per generator."""
    from unlearn_gym.objectives.batches import PairSampler

    g = torch.Generator().manual_seed(0)
    rx, ry = torch.randn(20, 1, 4, 4, generator=g), torch.tensor([0, 1, 2, 3] * 5)
    fx, fy = torch.randn(5, 1, 4, 4, generator=g), torch.full((5,), 3)
    sampler = PairSampler(rx, ry, fx, fy, 6, pairing)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    many = sampler.sample_many(gens)
    after_many = [torch.rand(2, generator=gen) for gen in gens]  # the generators moved on as sample moves them
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    ones = [sampler.sample(gen) for gen in gens]
    for k in ("x", "y_x", "a", "y_a") + (("x_other", "y_other") if pairing == "same-label" else ()):
        assert torch.equal(getattr(many, k), torch.stack([getattr(b, k) for b in ones])), k
    assert (many.x_other is None) == (pairing == "drawn") and many.coef_x == ones[0].coef_x
    for gen, after in zip(gens, after_many):
        assert torch.equal(torch.rand(2, generator=gen), after)
