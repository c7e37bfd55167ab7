"""Named, versioned instance sets: lookup, env construction, per-reset drawing, recorded versions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import unlearn_gym  # noqa: F401
from unlearn_gym.envs.instances import (
    INSTANCE_SETS,
    Instance,
    InstanceSet,
    get_instance,
    instance_info,
    register_instance_set,
    resolve_instances,
)
from unlearn_gym.envs.multi import InstanceSetEnv
from unlearn_gym.policies import ConstantPolicy, rollout

MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
SMALL = {"n_forget": 16, "n_per_retain": 2, "steps": 2}


def _micro_instances(set_name: str) -> list[Instance]:
    return [i for i in INSTANCE_SETS[set_name].split("all") if i.preset == "micro"]


def test_every_set_has_train_and_test_splits_and_unique_names():
    assert {"default", "lambda", "erase"} <= set(INSTANCE_SETS)
    names = []
    for s in INSTANCE_SETS.values():
        assert s.version >= 1 and s.train and s.test and s.description
        assert len({i.action for i in s.split("all")}) == 1  # one action space per set
        names += [i.name for i in s.split("all")]
    assert len(names) == len(set(names))
    assert INSTANCE_SETS["default"].train[0].action == "lambda+scale"
    assert INSTANCE_SETS["lambda"].train[0].action == "lambda"


def test_lookup_errors_name_the_known_choices():
    with pytest.raises(ValueError, match="known instances"):
        get_instance("no-such-instance")
    with pytest.raises(ValueError, match="known sets"):
        resolve_instances("no-such-set:train")
    with pytest.raises(ValueError, match="split"):
        resolve_instances("default:validation")
    with pytest.raises(ValueError, match="already registered"):
        register_instance_set(InstanceSet("dup", 1, "d", (INSTANCE_SETS["default"].train[0],)))


def test_resolve_and_info():
    train = resolve_instances("default:train")
    assert train == [i.name for i in INSTANCE_SETS["default"].train]
    assert resolve_instances("default") == train
    test_names = resolve_instances("default:test")
    assert not set(train) & set(test_names)
    info = instance_info(test_names[0])
    assert info == {"name": test_names[0], "set": "default", "version": INSTANCE_SETS["default"].version,
                    "split": "test"}


def test_make_with_instance_applies_it_and_records_it():
    inst = _micro_instances("default")[0]
    env = gym.make(MICRO, instance=inst.name, outcome_config=SMALL, horizon=inst.horizon).unwrapped
    for key in ("preset", "task", "horizon", "batch_size", "lr", "rule", "scale", "action", "data_ratio", "reward"):
        assert env.config[key] == getattr(inst, key), key
    assert env.action_space.shape == (2 if inst.action == "lambda+scale" else 1,)
    _, info = env.reset(seed=0)
    assert info["instance"]["name"] == inst.name and info["instance"]["version"] >= 1
    assert gym.make(MICRO, instance=inst.name, reward="siss", outcome_config=SMALL).unwrapped.config["reward"] == "siss"
    with pytest.raises(ValueError, match="drop horizon or drop instance"):
        gym.make(MICRO, instance=inst.name, horizon=inst.horizon + 1)


def test_instance_episode_records_version_in_outcome():
    inst = _micro_instances("erase")[0]
    env = gym.make(MICRO, instance=inst.name, outcome_config=SMALL).unwrapped
    env.horizon = 2  # a short episode is enough to check the bookkeeping
    r = rollout(env, ConstantPolicy(0.0), seed=0)
    assert r["info"]["outcome"]["instance"]["set"] == "erase"
    assert r["info"]["outcome"]["task"] == inst.task


def test_instances_draw_one_per_reset_seeded():
    names = [i.name for i in _micro_instances("default")][:2]
    env = gym.make(MICRO, instances=names, outcome_config=SMALL)
    assert isinstance(env.unwrapped, InstanceSetEnv)

    def draws(seed):
        env.reset(seed=seed)
        return [env.unwrapped.current.config["instance"]] + [
            env.reset()[1]["instance"]["name"] for _ in range(7)]

    a, b = draws(3), draws(3)
    assert a == b and set(a) == set(names)  # seeded, and both get drawn
    _, info = env.reset(options={"instance": names[1]})
    assert info["instance"]["name"] == names[1]
    with pytest.raises(ValueError, match="not in this env's instances"):
        env.reset(options={"instance": "no-such"})
    obs, r, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert obs.shape == (6,) and np.isfinite(r)
    with pytest.raises(ValueError, match="either instance"):
        gym.make(MICRO, instances=names, instance=names[0])


def test_instance_set_env_passes_the_checker():
    names = [i.name for i in _micro_instances("default")][:2]
    env = InstanceSetEnv(names, outcome_config=SMALL)
    check_env(env, skip_render_check=True)


def test_mixed_action_spaces_are_refused():
    mixed = [INSTANCE_SETS["default"].train[0].name, INSTANCE_SETS["lambda"].train[0].name]
    with pytest.raises(ValueError, match="share the action space"):
        InstanceSetEnv(mixed)


def test_erase_tasks_use_the_calibrated_defaults_and_erase_on_micro():
    from unlearn_gym.presets import get_preset

    p = get_preset("micro")
    env = gym.make(MICRO, task="erase-7", horizon=3, outcome=False).unwrapped
    assert (env.config["lr"], env.config["scale"], env.config["batch_size"]) == (
        p.erase_lr, p.erase_scale, p.erase_batch)
    explicit = gym.make(MICRO, task="erase-7", horizon=3, lr=3e-5, scale=0.2, outcome=False).unwrapped
    assert (explicit.config["lr"], explicit.config["scale"]) == (3e-5, 0.2)
    # the micro erase instance: a constant policy drives the digit's accuracy from ~0.8 to near 0
    env = gym.make(MICRO, instance="micro-erase7-h100").unwrapped
    out = rollout(env, ConstantPolicy(0.0), seed=0)["info"]["outcome"]
    assert out["reference"]["forget"] > 0.7 and out["forget"] < 0.1, out
    # the other digits survive, damaged (micro pays ~20 points of confident accuracy, see docs/headroom.md)
    assert out["reference"]["retain_mean"] - out["retain_mean"] < 0.35, out


def test_vae_set_fixes_the_model_family():
    inst = get_instance("vae-micro-scale-b8-h30")
    assert inst.model == "cvae" and all(i.model == "cvae" for i in INSTANCE_SETS["vae"].split("all"))
    assert all(i.model == "ddpm" for s in ("default", "lambda", "erase") for i in INSTANCE_SETS[s].split("all"))
    env = gym.make(MICRO, instance=inst.name, outcome_config=SMALL).unwrapped  # a DDPM id: the instance decides
    assert env.config["model"] == "cvae" and env.config["lr"] == inst.lr == 1e-3
    check_env(env, skip_render_check=True)
    r = rollout(env, ConstantPolicy([0.0, 0.0], dim=2), seed=0)
    assert r["steps"] == inst.horizon and r["info"]["outcome"]["instance"]["set"] == "vae"
    with pytest.raises(ValueError, match="is a 'ddpm' instance"):  # the VAE id passes model='cvae'
        gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance=_micro_instances("default")[0].name, outcome_config=SMALL)
    mixed = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instances="vae:all", outcome_config=SMALL)
    mixed.reset(seed=1)
    assert mixed.unwrapped.config["model"] == "cvae"
