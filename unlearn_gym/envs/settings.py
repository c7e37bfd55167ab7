"""The resolved settings of an unlearning env: the run (:class:`~unlearn_gym.settings.RunSettings`)
plus the MDP on top of it (action, observation state, reward, episode end).

:func:`resolve_env_settings` is the env's one resolver: it applies a named instance, fills every
default (each lives on a field, here or on :class:`~unlearn_gym.settings.RunSettings`) and checks
every value. ``SISSUnlearnEnv(**kwargs)`` is ``SISSUnlearnEnv(settings=resolve_env_settings(**kwargs))``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from unlearn_gym.envs.instances import apply_instance
from unlearn_gym.envs.outcome import OutcomeConfig
from unlearn_gym.settings import RunSettings, resolve_run_settings
from unlearn_gym.validation import check_env_arguments

MODES = ("episodic", "online")
STATES = ("update", "exact")
REWARDS = ("siss", "probe", "outcome")
ACTIONS = ("lambda", "lambda+scale")
OBSERVATIONS = ("paper", "unitless")

#: marks a field a saved online run and the env it is loaded into need not share
_FREE = {"resume": False}


@dataclass(frozen=True)
class EnvSettings(RunSettings):
    """Every setting of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` (see its docstring for
    what each does to the MDP). The run's fields are :class:`~unlearn_gym.settings.RunSettings`'.

    :param mode: ``"episodic"`` (every reset restores θ_0) or ``"online"`` (one long run).
    :param lambda_min: λ of action -1.
    :param lambda_max: λ of action +1.
    :param action: ``"lambda"`` or ``"lambda+scale"`` (the second component sets the rule's constant).
    :param scale_range: ``(lo, hi)`` of the second action component; ``lambda+scale`` only. Default
        ``(scale/10, 10·scale)``.
    :param state: ``"update"`` (observe the update's own terms, free) or ``"exact"`` (recompute them
        at θ_{t+1} on a fresh batch).
    :param observation: ``"paper"`` (the paper's 6 features) or ``"unitless"`` (losses and norms as
        ratios to θ_0's, the gradients' cosine, the last forget scale, the remaining budget and
        instance features; :data:`~unlearn_gym.envs.encoding.UNITLESS_FEATURES`).
    :param reward: ``"siss"`` (the paper's), ``"probe"`` or ``"outcome"``; an instance's own reward
        by default, else ``"siss"``.
    :param beta: weight β of the smoothness penalty β (λ_t - λ_{t-1})². Default: 0.1 (the paper's)
        for the per-step rewards, 0 for ``reward="outcome"`` (its return is the outcome score).
    :param s: forget scale s >= 0 of the reward's loss value.
    :param divergence_factor: retain-loss EMA multiple of θ_0's retain loss that ends an episode.
    :param reward_clip: bound on the reward's loss term.
    :param probe_size: pairs in the fixed probe batch. Default: ``batch_size``.
    :param shaping: ``reward="outcome"`` only: weight k of the potential ``Φ(θ) = -k L_SISS(θ; 0.5)``.
    :param outcome: score the model at every episode end (``info["outcome"]``).
    :param outcome_config: how the outcome score samples and scores.
    :param instance: the named benchmark instance these settings came from (``None``: none).
    :param render_cols: samples per label row of the rendered grid.
    :param render_steps: DDIM steps of the rendered samples.
    """

    mode: str = field(default="episodic", metadata=_FREE)
    lambda_min: float = 0.05
    lambda_max: float = 0.95
    action: str = "lambda"
    scale_range: tuple[float, float] | None = None
    state: str = "update"
    observation: str = "paper"
    reward: str = "siss"
    beta: float | None = None
    s: float = 0.0
    divergence_factor: float = 10.0
    reward_clip: float = 10.0
    probe_size: int = 0
    shaping: float = 0.0
    outcome: bool = field(default=True, metadata=_FREE)
    outcome_config: OutcomeConfig = field(default_factory=OutcomeConfig)
    instance: str | None = field(default=None, metadata=_FREE)
    render_cols: int = field(default=8, metadata=_FREE)
    render_steps: int = field(default=10, metadata=_FREE)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the preset as its name, the outcome config as a dict)."""
        out = super().to_dict()
        out["outcome_config"] = dataclasses.asdict(self.outcome_config)
        return out

    @classmethod
    def resume_keys(cls) -> tuple[str, ...]:
        """The settings a saved online run and the env it is loaded into must share (what changes
        the run's dynamics or rewards; not where it runs, where it started from or how it renders)."""
        free = {"checkpoint", "device"}
        return tuple(f.name for f in dataclasses.fields(cls)
                     if f.metadata.get("resume", True) and f.name not in free)


_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunSettings))
_ENV_FIELDS = frozenset(f.name for f in dataclasses.fields(EnvSettings)) - _RUN_FIELDS


def env_argument_names() -> tuple[str, ...]:
    """Every keyword :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` accepts (``settings``,
    ``render_mode`` and the arguments of :func:`resolve_env_settings`)."""
    fields = [f.name for f in dataclasses.fields(EnvSettings)]
    return ("settings", "render_mode", *fields)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def resolve_env_settings(
    preset: str | None = None,
    task: str | None = None,
    model: str | None = None,
    *,
    instance: str | None = None,
    **overrides: Any,
) -> EnvSettings:
    """:class:`EnvSettings` from a preset, task, model family, an optional named instance and overrides.

    The instance fixes ``preset`` (it replaces a registered id's), and ``model``, ``task``,
    ``data_ratio``, ``action`` and the hyperparameters it names (an explicit different value of
    these is an error naming both); its reward is a default. An argument of ``None`` means "the
    default" (``preset`` ``"tiny"``, ``task`` ``"trousers"``, ``model`` ``"ddpm"``).

    :param preset: preset name.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param model: ``"ddpm"`` or ``"cvae"``.
    :param instance: a named benchmark instance (:mod:`unlearn_gym.envs.instances`).
    :param overrides: any other field of :class:`EnvSettings`.
    :raises ValueError: an unknown setting or an invalid value, naming it and what is allowed.
    """
    known = (_RUN_FIELDS | _ENV_FIELDS) - {"preset", "task", "model", "instance"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown env argument(s) {unknown}; known: {sorted(known)}")
    kw = {"preset": preset, "task": task, "model": model, **overrides}
    if instance is not None:
        kw = apply_instance(instance, kw)
    kw = {k: v for k, v in kw.items() if v is not None}
    preset, task, model = kw.pop("preset", "tiny"), kw.pop("task", "trousers"), kw.pop("model", "ddpm")
    run = resolve_run_settings(preset, task, model, **{k: v for k, v in kw.items() if k in _RUN_FIELDS})
    env = {k: v for k, v in kw.items() if k in _ENV_FIELDS}
    check_env_arguments(**{k: env[k] for k in ("probe_size", "beta", "s", "reward_clip", "divergence_factor",
                                               "render_cols", "render_steps") if k in env})
    settings = EnvSettings(**{f.name: getattr(run, f.name) for f in dataclasses.fields(RunSettings)},
                           instance=instance, **env)
    return _checked(settings)


def _checked(c: EnvSettings) -> EnvSettings:
    """Cross-field checks and the defaults that depend on other fields."""
    for name, allowed in (("mode", MODES), ("state", STATES), ("reward", REWARDS), ("action", ACTIONS),
                          ("observation", OBSERVATIONS)):
        _choice(name, getattr(c, name), allowed)
    if not 0.0 < c.lambda_min < c.lambda_max < 1.0:
        raise ValueError(f"need 0 < lambda_min < lambda_max < 1, got {c.lambda_min}, {c.lambda_max}")
    if not (isinstance(c.shaping, (int, float)) and math.isfinite(c.shaping) and c.shaping >= 0):
        raise ValueError(f"shaping must be a finite number >= 0, got {c.shaping!r}")
    if c.reward == "outcome" and not c.outcome:
        raise ValueError("reward='outcome' needs outcome=True (the terminal reward is the outcome score)")
    if c.shaping and c.reward != "outcome":
        raise ValueError(f"shaping applies to reward='outcome' only, got reward={c.reward!r}")
    scale_range = None
    if c.action == "lambda+scale":
        lo, hi = (c.scale / 10.0, c.scale * 10.0) if c.scale_range is None else c.scale_range
        if not 0.0 < float(lo) <= float(hi) < math.inf:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi < inf, got {c.scale_range}")
        scale_range = (float(lo), float(hi))
    cfg = c.outcome_config
    if not isinstance(cfg, OutcomeConfig):
        cfg = OutcomeConfig(**(cfg or {}))
    return dataclasses.replace(
        c, scale_range=scale_range, outcome_config=cfg, probe_size=int(c.probe_size or c.batch_size),
        lambda_min=float(c.lambda_min), lambda_max=float(c.lambda_max), s=float(c.s),
        beta=float((0.0 if c.reward == "outcome" else 0.1) if c.beta is None else c.beta),
        divergence_factor=float(c.divergence_factor), reward_clip=float(c.reward_clip),
        shaping=float(c.shaping), outcome=bool(c.outcome),
        render_cols=int(c.render_cols), render_steps=int(c.render_steps))
