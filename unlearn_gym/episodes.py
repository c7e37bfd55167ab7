"""One scored episode of any policy on one benchmark instance: what policy evaluation and the baseline rows share.

* :func:`as_actor` adapts what a user brings — a :class:`~unlearn_gym.policies.Policy`, a plain
  callable ``obs -> action``, or a Stable-Baselines3 / sb3-contrib model (anything with
  ``predict(obs, state, episode_start, deterministic)``, recurrent models included) — to one
  interface;
* :func:`make_instance_env` builds ``gym.make(<the instance's family id>, instance=NAME)``;
* :func:`run_episode` plays ``env.reset(seed=s)`` to the episode's end and returns its outcome score;
* :class:`EpisodeRunner` plays policies on named instances with one cached env per instance (the
  tuned-baseline search, :mod:`unlearn_gym.tuning`, and its Ray Tune trials).

Seed ``s`` on instance ``NAME`` is the same episode (mini-batches, noise, timesteps) for every
policy, so two policies' outcomes pair by (instance, seed); these are also the episodes of the
committed rows in ``docs/headroom/*.json``.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unlearn_gym.policies import Policy, rollout

#: registered id per (model family, preset); the instance fixes the rest
_FAMILY_IDS = {("cvae", "micro"): "unlearn_gym:SISSUnlearnVAE-v0", ("ddpm", "micro"): "unlearn_gym:SISSUnlearnMicro-v0",
               ("ddpm", "tiny"): "unlearn_gym:SISSUnlearn-v0"}


def env_id_for(instance: str) -> str:
    """The registered id whose defaults match the instance's model family and preset.

    :param instance: instance name.
    """
    from unlearn_gym.envs.instances import get_instance

    inst = get_instance(instance)
    return _FAMILY_IDS.get((inst.model, inst.preset), "unlearn_gym:SISSUnlearnMicro-v0")


def make_instance_env(instance: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """``gym.make(env_id_for(instance), instance=instance, **env_kwargs)``.

    :param instance: instance name.
    :param env_kwargs: further constructor arguments (e.g. ``outcome_config``, ``device``); those the
        instance fixes are refused by the env.
    """
    import gymnasium as gym

    import unlearn_gym  # noqa: F401  (registers the ids)

    kwargs = dict(env_kwargs or {})
    for key in ("instance", "instances"):
        if key in kwargs:
            raise ValueError(f"env_kwargs must not contain {key!r}: the instance is chosen per evaluation")
    if kwargs.get("outcome") is False:
        raise ValueError("env_kwargs outcome=False: policies are compared by the outcome score")
    return gym.make(env_id_for(instance), instance=instance, **kwargs)


class Actor:
    """A policy behind one interface: :meth:`reset` at each episode start, :meth:`act` per step.

    :param act: ``act(obs) -> action`` for one (unbatched) observation.
    :param reset: ``reset(seed)`` at the start of an episode.
    :param name: display name.
    """

    def __init__(self, act: Callable[[np.ndarray], Any], reset: Callable[[int], None], name: str):
        self.act, self.reset, self.name = act, reset, name


def as_actor(policy: Any, action_dim: int, name: str | None = None) -> Actor:
    """Adapt a policy for :func:`run_episode`.

    * a :class:`~unlearn_gym.policies.Policy`: ``policy(obs, action_dim)``, ``policy.reset(seed)``
      at every episode start (a :class:`~unlearn_gym.policies.RandomPolicy` is seeded by the episode);
    * an object with ``predict`` (Stable-Baselines3, sb3-contrib, or anything with SB3's signature):
      ``predict(obs[None], state=state, episode_start=..., deterministic=True)``; the recurrent
      state of e.g. ``RecurrentPPO`` is carried through the episode and ``episode_start`` is true at
      its first step only. A model trained with ``VecNormalize`` needs its observations normalised:
      wrap it in a callable that does it;
    * any other callable: ``policy(obs)`` (or ``policy(obs, action_dim)`` when it requires two
      positional arguments, as :func:`~unlearn_gym.policies.rollout` calls policies).

    :param policy: the policy.
    :param action_dim: the env's action components.
    :param name: display name (default: the function's name, else the object's type name).
    """
    if name is None:
        name = getattr(policy, "__name__", None) or type(policy).__name__
    if isinstance(policy, Policy):
        return Actor(lambda obs: policy(obs, action_dim), policy.reset, name)
    if hasattr(policy, "predict") and callable(policy.predict):
        memo: dict[str, Any] = {}

        def reset(seed: int) -> None:
            memo.update(state=None, start=True)

        def act(obs: np.ndarray) -> Any:
            o = np.asarray(obs, dtype=np.float32)[None]
            start = np.array([memo["start"]], dtype=bool)
            action, memo["state"] = policy.predict(o, state=memo["state"], episode_start=start, deterministic=True)
            memo["start"] = False
            return np.asarray(action)[0]

        return Actor(act, reset, name)
    if callable(policy):
        two = _required_positional(policy) >= 2
        return Actor((lambda obs: policy(obs, action_dim)) if two else policy, lambda seed: None, name)
    raise TypeError(f"cannot evaluate {type(policy).__name__!r}: pass a unlearn_gym.policies.Policy, a callable"
                    " obs -> action, or a model with SB3's predict(obs, state, episode_start, deterministic)")


def _required_positional(fn: Any) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def check_spaces(policy: Any, env: Any, instance: str) -> None:
    """A model that records its spaces (SB3 does) must match the instance's.

    :param policy: the policy (anything; only ``action_space`` / ``observation_space`` are read).
    :param env: the instance's env.
    :param instance: its name (for the error).
    :raises ValueError: a shape that differs, naming both.
    """
    for attr in ("action_space", "observation_space"):
        mine = getattr(policy, attr, None)
        shape = getattr(mine, "shape", None)
        if shape is not None and tuple(shape) != tuple(getattr(env, attr).shape):
            raise ValueError(f"the policy's {attr} has shape {tuple(shape)}, instance {instance!r} has"
                             f" {tuple(getattr(env, attr).shape)}")



def run_episode(env: Any, actor: Actor, seed: int) -> dict[str, Any]:
    """Play ``env.reset(seed=seed)`` to the episode's end (diverged or the horizon reached).

    :param env: an unlearn-gym env of one instance (outcome score on).
    :param actor: from :func:`as_actor`.
    :param seed: reset seed.
    :returns: ``outcome`` (``info["outcome"]["outcome"]``), ``forget``, ``retain_mean``, ``return``
        (the sum of the env's rewards), ``steps``, ``diverged``, ``outcome_version``.
    """
    shape = env.action_space.shape
    actor.reset(seed)
    obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(actor.act(obs), dtype=np.float32).reshape(shape)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
    out = info.get("outcome")
    if out is None:
        raise RuntimeError("the episode ended without info['outcome']: make the env with the outcome score on")
    return {"outcome": float(out["outcome"]), "forget": float(out.get("forget", np.nan)),
            "retain_mean": float(out.get("retain_mean", np.nan)),
            "return": total, "steps": steps, "diverged": bool(terminated), "outcome_version": int(out["version"])}


#: the registered id every ``lambda+scale`` benchmark instance runs on (the instance fixes the rest)
ENV_ID = "unlearn_gym:SISSUnlearnMicro-v0"


class EpisodeRunner:
    """Runs episodes of policies on named instances, one cached env per instance.

    :param env_kwargs: extra env arguments of every episode (e.g. a smaller ``outcome_config``).
    :param env_id: the registered id.
    :param make_env: ``make_env(name) -> env`` instead of ``gym.make(env_id, instance=name,
        **env_kwargs)`` (e.g. toy envs that are no registered instance, in tests).
    """

    def __init__(self, env_kwargs: dict[str, Any] | None = None, env_id: str = ENV_ID,
                 make_env: Callable[[str], Any] | None = None) -> None:
        self.env_kwargs = dict(env_kwargs or {})
        self.env_id = env_id
        self.make_env = make_env
        self._envs: dict[str, Any] = {}
        self.episodes = 0

    def env(self, instance: str) -> Any:
        """The cached env of ``instance``."""
        if instance not in self._envs and self.make_env is not None:
            self._envs[instance] = self.make_env(instance)
        if instance not in self._envs:
            import gymnasium as gym

            self._envs[instance] = gym.make(self.env_id, instance=instance, **self.env_kwargs)
        return self._envs[instance]

    def run(self, policy: Policy, instance: str, seed: int) -> dict[str, Any]:
        """One episode: ``instance``, ``seed``, ``outcome``, ``forget``, ``retain_mean``, ``retain_drop``,
        the mean λ and ρ taken, ``steps`` and ``wall_s``."""
        t0 = time.perf_counter()
        r = rollout(self.env(instance), policy, seed=seed)
        self.episodes += 1
        o = r["info"].get("outcome") or {}
        n = max(1, r["steps"])
        return {"instance": instance, "seed": int(seed), "outcome": float(o.get("outcome", math.nan)),
                "forget": float(o.get("forget", math.nan)), "retain_mean": float(o.get("retain_mean", math.nan)),
                "retain_drop": float(o.get("retain_drop", math.nan)), "mean_lambda": sum(r["lambdas"]) / n,
                "mean_scale": sum(r["scales"]) / n, "max_scale": max(r["scales"], default=math.nan),
                "steps": r["steps"], "wall_s": round(time.perf_counter() - t0, 3)}

    def evaluate(self, policy: Policy, instances: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
        """Rows of every (instance, seed) episode of ``policy``."""
        return [self.run(policy, inst, s) for inst in instances for s in seeds]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def mean_outcome(rows: Sequence[dict[str, Any]]) -> float:
    """Mean outcome of rows (non-finite ones count as −1, the worst score)."""
    vals = [r["outcome"] if math.isfinite(r["outcome"]) else -1.0 for r in rows]
    return sum(vals) / len(vals) if vals else math.nan
