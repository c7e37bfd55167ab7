"""λ policies that need no training, the baselines every RL agent must beat, and a rollout helper.

A policy maps an observation of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` to an action
in ``[-1, 1]^d``. Schedules read the episode progress ``t/T`` from the observation (its last
component), so they work with the plain env, vector envs and wrappers that keep the observation.
Every policy has Stable-Baselines3's ``predict(obs, state, episode_start, deterministic)``
signature, so ``stable_baselines3.common.evaluation.evaluate_policy`` accepts it.

Values are given in action units (``-1`` = λ_min, ``0`` = λ = 0.5 for the default range, ``+1`` =
λ_max; for ``action="lambda+scale"`` the second component is the log-uniform forget scale). A
scalar value is broadcast to every component.

>>> pol = LinearSchedule(start=1.0, end=-1.0)      # λ from λ_max down to λ_min
>>> pol(np.array([0, 0, 0, 0, 0.5, 0.5], dtype=np.float32), dim=1)
array([0.], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unlearn_gym.envs.encoding import PROGRESS_INDEX

Values = float | Sequence[float]


def _vec(v: Values, dim: int) -> np.ndarray:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if a.size == 1:
        a = np.repeat(a, dim)
    if a.shape != (dim,):
        raise ValueError(f"expected {dim} action component(s), got {np.asarray(v).tolist()!r}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"policy values must be finite, got {np.asarray(v).tolist()!r}")
    return np.clip(a, -1.0, 1.0)


class Policy:
    """Base class: ``policy(obs, dim)`` returns an action; ``predict`` mimics SB3."""

    name: str = "policy"

    def action(self, progress: float, dim: int) -> np.ndarray:
        """The action at episode progress ``t/T`` (override this).

        :param progress: ``t/T`` in [0, 1].
        :param dim: number of action components.
        """
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (stateful policies reseed here).

        :param seed: optional seed.
        """

    def __call__(self, obs: np.ndarray, dim: int = 1) -> np.ndarray:
        progress = float(np.asarray(obs, dtype=np.float64).reshape(-1)[PROGRESS_INDEX])
        return self.action(progress, dim).astype(np.float32)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3-style batched prediction (``observation`` of shape ``(n_envs, 6)`` or ``(6,)``).

        :param observation: observation(s).
        :param state: unused (SB3 signature).
        :param episode_start: unused (SB3 signature).
        :param deterministic: unused; schedules are deterministic, :class:`RandomPolicy` is not.
        """
        obs = np.asarray(observation)
        dim = getattr(self, "dim", 1)
        if obs.ndim == 1:
            return self(obs, dim), None
        return np.stack([self(o, dim) for o in obs]), None


@dataclass
class ConstantPolicy(Policy):
    """The same action at every step.

    :param value: action value(s) in [-1, 1].
    :param dim: action components (for ``predict``; ``__call__`` takes it as an argument).
    """

    value: Values = 0.0
    dim: int = 1
    name: str = "constant"

    def action(self, progress: float, dim: int) -> np.ndarray:
        return _vec(self.value, dim)


@dataclass
class LinearSchedule(Policy):
    """Linear interpolation from ``start`` (t = 0) to ``end`` (t = T).

    :param start: action value(s) at the start.
    :param end: action value(s) at the end.
    :param dim: action components (for ``predict``).
    """

    start: Values = 1.0
    end: Values = -1.0
    dim: int = 1
    name: str = "linear"

    def weight(self, progress: float) -> float:
        """Share of the way from ``start`` to ``end`` at ``progress`` (override for other shapes)."""
        return progress

    def action(self, progress: float, dim: int) -> np.ndarray:
        a, b = _vec(self.start, dim), _vec(self.end, dim)
        return a + self.weight(progress) * (b - a)


@dataclass
class CosineSchedule(LinearSchedule):
    """Cosine annealing from ``start`` to ``end`` (slow at both ends).

    :param start: action value(s) at the start.
    :param end: action value(s) at the end.
    :param dim: action components (for ``predict``).
    """

    name: str = "cosine"

    def weight(self, progress: float) -> float:
        return 0.5 * (1.0 - math.cos(math.pi * progress))


@dataclass
class StepSchedule(Policy):
    """Two phases: ``first`` until progress ``switch``, then ``second``.

    :param first: action value(s) of the first phase.
    :param second: action value(s) of the second phase.
    :param switch: progress at which the second phase starts, in (0, 1).
    :param dim: action components (for ``predict``).
    """

    first: Values = 1.0
    second: Values = -1.0
    switch: float = 0.5
    dim: int = 1
    name: str = "two-phase"

    def action(self, progress: float, dim: int) -> np.ndarray:
        return _vec(self.first if progress < self.switch else self.second, dim)


@dataclass
class RandomPolicy(Policy):
    """Uniformly random actions in [-1, 1] (its own seeded generator).

    :param seed: seed of the generator (reseeded by :meth:`reset` with a seed).
    :param dim: action components (for ``predict``).
    """

    seed: int = 0
    dim: int = 1
    name: str = "random"
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def action(self, progress: float, dim: int) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, size=dim)


def rollout(env: Any, policy: Callable[[np.ndarray, int], np.ndarray], seed: int | None = None,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one episode of ``policy`` and collect what a comparison needs.

    :param env: a (possibly wrapped) unlearn-gym env.
    :param policy: ``policy(obs, dim) -> action`` (any :class:`Policy`, or a plain function).
    :param seed: reset seed.
    :param options: reset options.
    :returns: ``return`` (sum of rewards), ``steps``, ``lambdas``, ``scales``, ``rewards``,
        ``losses`` (the paper's L_SISS of each update), ``paper_return`` (the sum of
        ``info["paper_reward"]``: the paper's return, whatever the env's reward),
        ``terminated`` and the final ``info`` (whose ``"outcome"`` holds the outcome score).
    """
    if isinstance(policy, Policy):
        policy.reset(seed)
    dim = int(env.action_space.shape[0])
    obs, info = env.reset(seed=seed, options=options)
    rewards, lambdas, scales, losses, paper = [], [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        obs, r, terminated, truncated, info = env.step(policy(obs, dim))
        rewards.append(float(r))
        lambdas.append(float(info["lambda"]))
        scales.append(float(info["scale"]))
        losses.append(float(info["loss"]))
        paper.append(float(info["paper_reward"]))
    return {"return": float(sum(rewards)), "paper_return": float(sum(paper)), "steps": len(rewards),
            "rewards": rewards, "lambdas": lambdas, "scales": scales, "losses": losses,
            "terminated": bool(terminated), "info": info}


#: the display name of the default constant (action 0: λ = 0.5 at the instance's ρ) per action space
DEFAULT_CONSTANT = {"lambda": "const λ-action +0.0", "lambda+scale": "const scale +0.0"}


def baselines(spec: str) -> dict[str, Policy]:
    """The constants and schedules an agent must beat, by display name (``docs/headroom.md``).

    ``benchmarks/headroom.py`` measures exactly these, and the committed rows in
    ``docs/headroom/*.json`` and the shipped baseline rows are keyed by these names. For
    ``"lambda"``: λ at five constant action values and five λ schedules. For ``"lambda+scale"``: the
    forget scale ρ at five constant values (λ = 0.5), λ at both ends (ρ at the instance's value),
    four ρ schedules and one λ schedule. Every policy with a name starting ``"const"`` is a
    :class:`ConstantPolicy`; the rest are schedules. :data:`DEFAULT_CONSTANT` names action 0.

    >>> sorted(baselines("default:test"))[:2]
    ['const scale +0.0', 'const scale +0.5']

    :param spec: an action space (``"lambda"``, ``"lambda+scale"``), an instance set or
        ``"SET:SPLIT"`` (its instances must share one action space), or an instance name.
    :returns: a new dict of new policy objects (name -> policy), constants first.
    """
    action = spec if spec in DEFAULT_CONSTANT else _action_of(spec)
    if action == "lambda":
        pols: dict[str, Policy] = {f"const λ-action {v:+.1f}": ConstantPolicy(v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)}
        pols.update({
            "λ decay (linear +1→-1)": LinearSchedule(1.0, -1.0),
            "λ rise (linear -1→+1)": LinearSchedule(-1.0, 1.0),
            "λ cosine +1→-1": CosineSchedule(1.0, -1.0),
            "λ two-phase (+1 | -1)": StepSchedule(1.0, -1.0, 0.5),
            "λ two-phase (-1 | +1)": StepSchedule(-1.0, 1.0, 0.5),
        })
        return pols
    pols = {f"const scale {v:+.1f}": ConstantPolicy([0.0, v], dim=2) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)}
    pols.update({
        "const λ -1, scale 0": ConstantPolicy([-1.0, 0.0], dim=2),
        "const λ +1, scale 0": ConstantPolicy([1.0, 0.0], dim=2),
        "scale decay (linear +1→-1)": LinearSchedule([0.0, 1.0], [0.0, -1.0], dim=2),
        "scale rise (linear -1→+1)": LinearSchedule([0.0, -1.0], [0.0, 1.0], dim=2),
        "scale cosine +1→-1": CosineSchedule([0.0, 1.0], [0.0, -1.0], dim=2),
        "scale two-phase (+1 | -0.5)": StepSchedule([0.0, 1.0], [0.0, -0.5], 0.5, dim=2),
        "λ decay, scale 0": LinearSchedule([1.0, 0.0], [-1.0, 0.0], dim=2),
    })
    return pols


def _action_of(spec: str) -> str:
    from unlearn_gym.envs.instances import INSTANCE_SETS, get_instance, resolve_instances

    names = resolve_instances(spec) if spec.partition(":")[0] in INSTANCE_SETS else [get_instance(spec).name]
    actions = {get_instance(n).action for n in names}
    if len(actions) != 1:
        raise ValueError(f"{spec!r} mixes action spaces {sorted(actions)}; ask for one action space at a time")
    return actions.pop()
