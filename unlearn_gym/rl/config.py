"""Hyperparameter files in the rl-baselines3-zoo format: loading, protocol overrides, ``--set``, checks.

A file (``unlearn_gym/rl/hyperparams/<algo>.yml`` by default, shipped as package data) maps env ids
to blocks of hyperparameters::

    default:                      # the base of every block, and the block of an id not listed
      policy: MlpPolicy
      n_timesteps: 20000
      n_envs: 1
      normalize: false
      env_kwargs: {}
      policy_kwargs: {net_arch: {pi: [64, 64], vf: [64, 64]}, activation_fn: tanh}
      gamma: 0.99                 # any keyword of the algorithm's constructor
      online: {n_steps: 256}      # overrides applied under --protocol online (also: episodic)
    SISSUnlearnMicro-v0:
      n_timesteps: 20000

Keys of a block: the rl-zoo keys (``policy``, ``policy_kwargs``, ``n_timesteps``, ``env_kwargs``,
``normalize``, ``n_envs``), the protocol blocks ``episodic`` / ``online``, and the keywords of the
algorithm's constructor (checked against its signature). ``policy_kwargs`` are checked against the
policy class, ``normalize`` (``true`` or a mapping) against ``VecNormalize``. Class-valued settings
are written as names: ``activation_fn: tanh`` (tanh, relu, elu, leaky_relu, gelu, silu),
``optimizer_class: AdamW`` (any ``torch.optim`` class). ``learning_rate: lin_3e-4`` decays linearly
to 0 as in rl-zoo. Anything else is an error that names the key.

Merging: ``default`` then the env id's block (``policy_kwargs``, ``env_kwargs`` and the protocol
blocks merge one level deep; other keys are replaced), then the protocol block, then ``--set
key=value`` overrides (``value`` in the grammar of :mod:`unlearn_gym.overrides`, shared with the
methods' ``--set``: Python literals and inline YAML-style ``[a, b]`` / ``{pi: [32]}``; dotted keys
reach into ``env_kwargs`` and ``policy_kwargs``: ``--set env_kwargs.beta=0.2``).
"""

from __future__ import annotations

import copy
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from unlearn_gym.overrides import parse_set as parse_overrides

#: algorithm name -> (module, class)
ALGOS: dict[str, tuple[str, str]] = {
    "ppo": ("stable_baselines3", "PPO"),
    "sac": ("stable_baselines3", "SAC"),
    "a2c": ("stable_baselines3", "A2C"),
    "tqc": ("sb3_contrib", "TQC"),
    "recurrentppo": ("sb3_contrib", "RecurrentPPO"),
}
#: the rl-baselines3-zoo keys this project uses
ZOO_KEYS = ("policy", "policy_kwargs", "n_timesteps", "env_kwargs", "normalize", "n_envs")
#: protocol blocks (overrides applied under ``--protocol``)
PROTOCOLS = ("episodic", "online")
#: constructor arguments the trainer sets itself, and where they come from
RESERVED = {"env": "--env", "seed": "--seed", "tensorboard_log": "--out", "verbose": "--verbose",
            "_init_setup_model": "the trainer"}
#: class-valued constructor arguments that a YAML file cannot name
UNSUPPORTED = ("rollout_buffer_class", "replay_buffer_class", "action_noise", "features_extractor_class")
#: names accepted for ``policy_kwargs.activation_fn``
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU",
               "silu": "SiLU"}
#: nested mappings that merge one level deep
_NESTED = ("policy_kwargs", "env_kwargs", *PROTOCOLS)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class HyperparameterError(ValueError):
    """A hyperparameter file or override is malformed or names an unknown key."""


def hyperparams_dir() -> Path:
    """The folder of the shipped files (``unlearn_gym/rl/hyperparams``, package data)."""
    return Path(__file__).resolve().parent / "hyperparams"


def default_hyperparams_path(algo: str) -> Path:
    """The shipped file of an algorithm.

    :param algo: one of :data:`ALGOS`.
    """
    check_algo(algo)
    return hyperparams_dir() / f"{algo}.yml"


def check_algo(algo: str) -> str:
    """Return ``algo`` if it is known.

    :param algo: algorithm name.
    :raises HyperparameterError: naming the known algorithms.
    """
    if algo not in ALGOS:
        raise HyperparameterError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    return algo


def algo_class(algo: str) -> type:
    """The Stable-Baselines3 / sb3-contrib class of an algorithm (imported on demand).

    :param algo: one of :data:`ALGOS`.
    """
    import importlib

    module, name = ALGOS[check_algo(algo)]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{algo} needs {module}: pip install 'unlearn-gym[sb3]'") from e


def short_env_id(env_id: str) -> str:
    """``"unlearn_gym:SISSUnlearnMicro-v0"`` -> ``"SISSUnlearnMicro-v0"`` (the block key)."""
    return env_id.split(":", 1)[1] if ":" in env_id else env_id


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` as a string: turn number-like strings into numbers, recursively."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value) if any(c in value for c in ".eE") else int(value)
    if isinstance(value, Mapping):
        return {k: _coerce(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    return value


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a hyperparameter file: a mapping of env ids to blocks.

    :param path: the YAML file.
    :raises HyperparameterError: unreadable YAML or not a mapping of mappings.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise HyperparameterError(f"hyperparameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise HyperparameterError(f"{path}: not valid YAML ({e})") from e
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise HyperparameterError(f"{path}: expected a mapping of env ids to blocks, got {type(data).__name__}")
    for key, block in data.items():
        if not isinstance(block, Mapping) and block is not None:
            raise HyperparameterError(f"{path}: block {key!r} must be a mapping, got {type(block).__name__}")
    return {short_env_id(str(k)): _coerce(dict(v or {})) for k, v in data.items()}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; the nested mappings (``policy_kwargs``, ``env_kwargs``, protocol
    blocks) merge one level deep.

    :param base: the lower layer.
    :param over: the upper layer.
    """
    out = copy.deepcopy(dict(base))
    for key, val in over.items():
        if key in _NESTED and isinstance(val, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **copy.deepcopy(dict(val))}
        else:
            out[key] = copy.deepcopy(val)
    return out


def algo_keys(algo: str) -> list[str]:
    """Constructor keywords of the algorithm that a file may set."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    return [p for p in params if p not in ("self", "policy", "policy_kwargs", *RESERVED, *UNSUPPORTED)]


def policy_keys(algo: str, policy: str) -> list[str] | None:
    """Keywords of the policy class (``None`` when it takes ``**kwargs``).

    :param algo: algorithm name.
    :param policy: a policy alias of the algorithm (``MlpPolicy``, ``MlpLstmPolicy``, ...).
    """
    cls = algo_class(algo)
    if policy not in cls.policy_aliases:
        raise HyperparameterError(f"unknown policy {policy!r} for {algo}; choose one of {sorted(cls.policy_aliases)}")
    params = inspect.signature(cls.policy_aliases[policy].__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p not in ("self", "observation_space", "action_space", "lr_schedule")]


def _unknown(key: str, known: Iterable[str], where: str) -> HyperparameterError:
    return HyperparameterError(f"unknown hyperparameter {key!r} in {where}; known keys: {', '.join(sorted(known))}")


def validate(block: Mapping[str, Any], algo: str, where: str, *, nested: bool = True) -> None:
    """Check every key and the types of the zoo keys of one (possibly partial) block.

    :param block: hyperparameters.
    :param algo: algorithm name.
    :param where: what to name in errors (file and block).
    :param nested: allow the protocol blocks (not inside a protocol block).
    :raises HyperparameterError: naming the first offending key.
    """
    own = algo_keys(algo)
    allowed = [*ZOO_KEYS, *own, *(PROTOCOLS if nested else ())]
    for key, val in block.items():
        if key in RESERVED:
            raise HyperparameterError(f"{key!r} in {where} is set by {RESERVED[key]}, not by a hyperparameter file")
        if key in UNSUPPORTED:
            raise HyperparameterError(f"{key!r} in {where} takes a Python object; it cannot be set from YAML")
        if key not in allowed:
            raise _unknown(key, allowed, where)
        if key in PROTOCOLS:
            if not isinstance(val, Mapping):
                raise HyperparameterError(f"{key!r} in {where} must be a mapping of overrides")
            validate(val, algo, f"{where}.{key}", nested=False)
    if "n_timesteps" in block and not (isinstance(block["n_timesteps"], (int, float)) and block["n_timesteps"] >= 1):
        raise HyperparameterError(f"n_timesteps in {where} must be a number >= 1, got {block['n_timesteps']!r}")
    if "n_envs" in block and not (isinstance(block["n_envs"], int) and block["n_envs"] >= 1):
        raise HyperparameterError(f"n_envs in {where} must be an integer >= 1, got {block['n_envs']!r}")
    for key in ("env_kwargs", "policy_kwargs"):
        if key in block and not isinstance(block[key] or {}, Mapping):
            raise HyperparameterError(f"{key} in {where} must be a mapping, got {block[key]!r}")
    if "normalize" in block:
        norm = block["normalize"]
        if isinstance(norm, Mapping):
            from stable_baselines3.common.vec_env import VecNormalize

            ok = [p for p in inspect.signature(VecNormalize.__init__).parameters if p not in ("self", "venv")]
            for k in norm:
                if k not in ok:
                    raise _unknown(f"normalize.{k}", [f"normalize.{p}" for p in ok], where)
        elif not isinstance(norm, bool):
            raise HyperparameterError(f"normalize in {where} must be true, false or a mapping, got {norm!r}")
    if "policy_kwargs" in block and block.get("policy") is not None:
        keys = policy_keys(algo, block["policy"])
        for k, v in (block["policy_kwargs"] or {}).items():
            if keys is not None and k not in keys:
                raise _unknown(f"policy_kwargs.{k}", [f"policy_kwargs.{p}" for p in keys], where)
            if k == "activation_fn" and v not in ACTIVATIONS:
                raise HyperparameterError(f"policy_kwargs.activation_fn in {where} must be one of"
                                          f" {sorted(ACTIVATIONS)}, got {v!r}")
            if k == "optimizer_class":
                import torch

                if not isinstance(getattr(torch.optim, str(v), None), type):
                    raise HyperparameterError(f"policy_kwargs.optimizer_class in {where}: no torch.optim.{v}")
            if k == "features_extractor_class":
                raise HyperparameterError(f"policy_kwargs.{k} in {where} takes a Python class; it cannot be set"
                                          " from YAML")


def parse_set(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``["gamma=0.95", "env_kwargs.beta=0.2"]`` -> ``[("gamma", 0.95), ("env_kwargs.beta", 0.2)]``.

    The shared grammar of :func:`unlearn_gym.overrides.parse_value` (``[64, 64]``, ``{pi: [32]}``,
    ``true``, ``3e-4``, ``lin_3e-4``), its errors as :class:`HyperparameterError`.

    :param items: ``key=value`` strings.
    :raises HyperparameterError: an item without ``=`` or with an unreadable value.
    """
    try:
        return parse_overrides(items, example="gamma=0.95")
    except ValueError as e:
        raise HyperparameterError(str(e)) from e


def apply_set(hp: dict[str, Any], overrides: Iterable[tuple[str, Any]], algo: str) -> dict[str, Any]:
    """Apply ``--set`` overrides (dotted keys reach into ``env_kwargs``, ``policy_kwargs``, ``normalize``).

    :param hp: resolved hyperparameters (not modified).
    :param overrides: output of :func:`parse_set`.
    :param algo: algorithm name (for the error messages' list of known keys).
    """
    out = copy.deepcopy(hp)
    for key, value in overrides:
        head, dot, tail = key.partition(".")
        if dot:
            if head not in ("env_kwargs", "policy_kwargs", "normalize") or not tail:
                raise HyperparameterError(f"--set {key}: only env_kwargs.X, policy_kwargs.X and normalize.X"
                                          " take a dotted key")
            sub = out.get(head)
            out[head] = dict(sub) if isinstance(sub, Mapping) else {}
            out[head][tail] = value
        elif head in PROTOCOLS:
            raise HyperparameterError(f"--set {key}: set the key itself; --protocol picks the {head} overrides")
        else:
            out[head] = value
    return out


def load_hyperparams(
    algo: str,
    env_id: str,
    path: str | os.PathLike | None = None,
    *,
    protocol: str = "episodic",
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """The resolved hyperparameters of one run (plain values, as a YAML file would hold them).

    :param algo: one of :data:`ALGOS`.
    :param env_id: the env id (``unlearn_gym:`` prefix optional).
    :param path: the file (default: the shipped ``unlearn_gym/rl/hyperparams/<algo>.yml``).
    :param protocol: ``"episodic"`` or ``"online"``: which protocol block applies.
    :param overrides: ``key=value`` strings (``--set``).
    :raises HyperparameterError: unknown key (named), bad value, no block for ``env_id``.
    """
    check_algo(algo)
    if protocol not in PROTOCOLS:
        raise HyperparameterError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    path = Path(path) if path is not None else default_hyperparams_path(algo)
    data = read_yaml(path)
    env = short_env_id(env_id)
    if env not in data and "default" not in data:
        raise HyperparameterError(f"{path} has no block for {env!r} and no 'default' block (blocks: {sorted(data)})")
    for name, block in data.items():
        validate(block, algo, f"{path} [{name}]")
    hp = merge(data.get("default", {}), data.get(env, {}))
    hp = merge({k: v for k, v in hp.items() if k not in PROTOCOLS}, hp.get(protocol, {}))
    hp.setdefault("policy", "MlpLstmPolicy" if algo == "recurrentppo" else "MlpPolicy")
    for key, default in (("n_envs", 1), ("normalize", False), ("env_kwargs", {}), ("policy_kwargs", {})):
        hp.setdefault(key, default)
    hp = apply_set(hp, parse_set(overrides), algo)
    validate(hp, algo, "--set" if overrides else f"{path} [{env}]", nested=False)
    return hp


def linear_schedule(initial: float):
    """rl-zoo's ``lin_<value>``: the learning rate decays linearly from ``initial`` to 0.

    :param initial: the starting value.
    """

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def model_kwargs(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The algorithm constructor's keyword arguments from resolved hyperparameters: zoo keys dropped,
    names turned into classes, ``lin_`` schedules into functions.

    :param hp: output of :func:`load_hyperparams`.
    """
    import torch

    kw = {k: copy.deepcopy(v) for k, v in hp.items() if k not in ZOO_KEYS and k not in PROTOCOLS}
    for key in ("learning_rate", "clip_range"):
        val = kw.get(key)
        if isinstance(val, str) and val.startswith("lin_"):
            kw[key] = linear_schedule(float(val[4:]))
    pk = dict(hp.get("policy_kwargs") or {})
    if "activation_fn" in pk:
        pk["activation_fn"] = getattr(torch.nn, ACTIVATIONS[pk["activation_fn"]])
    if "optimizer_class" in pk:
        pk["optimizer_class"] = getattr(torch.optim, pk["optimizer_class"])
    kw["policy_kwargs"] = pk
    return kw


def check_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """Check ``env_kwargs`` against the constructor of an unlearn-gym env (other ids: unchecked).

    :param env_id: the env id.
    :param env_kwargs: constructor arguments.
    :raises HyperparameterError: naming an unknown argument.
    :raises ValueError: an unknown instance or set, a value that conflicts with an instance, an
        invalid value (the env's own message).
    """
    import gymnasium as gym

    import unlearn_gym  # noqa: F401  (registers the ids)
    from unlearn_gym.envs import ENTRY_POINT

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise HyperparameterError(f"unknown env id {env_id!r} ({e})") from e
    if spec.entry_point != ENTRY_POINT:
        return
    from unlearn_gym.envs.settings import env_argument_names

    known = [*env_argument_names(), "instances"]
    for k in env_kwargs:
        if k not in known:
            raise _unknown(f"env_kwargs.{k}", [f"env_kwargs.{p}" for p in known], f"the env arguments of {env_id}")
    _check_settings(spec.kwargs, env_kwargs)


def _check_settings(id_kwargs: Mapping[str, Any], env_kwargs: Mapping[str, Any]) -> None:
    """Resolve the settings the env would run with, without building it (cheap: no model, no data),
    so that a bad instance name, a conflict with an instance or an invalid value stops a run before
    it writes anything. Mirrors ``unlearn_gym.envs.multi.make_unlearn_env``."""
    from unlearn_gym.envs.instances import resolve_instances
    from unlearn_gym.envs.settings import resolve_env_settings

    kw = {**id_kwargs, **env_kwargs}
    kw.pop("settings", None)
    kw.pop("render_mode", None)
    instances = kw.pop("instances", None)
    if instances is None:
        resolve_env_settings(**kw)
        return
    if kw.get("instance") is not None:
        raise ValueError("pass either instance (one) or instances (drawn per reset), not both")
    for k in ("instance", "preset", "task", "model"):
        kw.pop(k, None)  # fixed by each instance, as InstanceSetEnv does
    for name in resolve_instances(instances):
        resolve_env_settings(instance=name, **kw)
