"""Tuned baselines for ``lambda+scale`` instances: the policy families a search tunes, and the
committed parameters (``docs/headroom.md``, "v3: tuned baselines").

Three families, each a :class:`~unlearn_gym.policies.Policy` (so :func:`~unlearn_gym.policies.rollout`
and SB3's ``evaluate_policy`` take them), each with the parameter box the search draws from
(:data:`SPACES`, action units in [-1, 1]: a[0] → λ, a[1] → ρ log-uniform on the instance's range):

- :class:`TunedConstant` (``lam``, ``rho``): the same action at every step;
- :class:`TunedSchedule` (6 parameters): λ linear from ``lam_start`` to ``lam_end``; ρ piecewise
  linear through ``(0, rho_start)``, ``(knee, rho_mid)``, ``(1, rho_end)`` over t/T. It contains
  every constant and every linear or rise-then-fall ρ schedule of the old grid;
- :class:`FeedbackController` (5 parameters): a closed-loop rule on the observation. It holds λ,
  starts ρ at ``rho0`` and, after a 2-step reference window, raises ρ by ``gain`` per step while
  the retain-gradient norm's EMA stays within ``tol`` (log10 units) of its reference and the
  forget loss's EMA has risen less than ``f_target``; when the retain-gradient norm rises more than
  ``tol`` it cuts ρ by ``2 gain``; otherwise it holds. The retain *gradient norm* is the damage
  signal because the mini-batch retain loss barely moves under a destroying ρ while log10 ‖g_r‖
  rises by about one unit (measured on ``micro-heavy-scale-b8-h30`` and ``-b64-h20``).

:func:`load_tuned` gives the committed policies of a set (``unlearn_gym/assets/tuned-*.json``,
written by ``benchmarks/tuned_baselines.py``; ``unlearn-gym tune`` re-runs one family's search).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.envs.encoding import OBS_NAMES, PROGRESS_INDEX
from unlearn_gym.policies import Policy

#: observation indices the controller reads
_GR = OBS_NAMES.index("log10_grad_norm_r")
_LF = OBS_NAMES.index("log10_L_f")

#: parameter box of each family: name -> (low, high)
SPACES: dict[str, dict[str, tuple[float, float]]] = {
    "constant": {"lam": (-1.0, 1.0), "rho": (-1.0, 1.0)},
    "schedule": {"lam_start": (-1.0, 1.0), "lam_end": (-1.0, 1.0), "rho_start": (-1.0, 1.0),
                 "rho_mid": (-1.0, 1.0), "rho_end": (-1.0, 1.0), "knee": (0.05, 0.95)},
    "feedback": {"lam": (-1.0, 1.0), "rho0": (-1.0, 1.0), "gain": (0.0, 0.25), "tol": (0.0, 1.0),
                 "f_target": (0.0, 2.0)},
}
#: display names of the families' policies (benchmark entry names)
ENTRY_NAMES = {"constant": "tuned-constant", "schedule": "tuned-schedule", "feedback": "tuned-feedback"}


def _two(lam: float, rho: float, dim: int) -> np.ndarray:
    if dim != 2:
        raise ValueError(f"tuned policies are for 'lambda+scale' instances (2 action components), got dim={dim}")
    return np.clip(np.array([lam, rho], dtype=np.float64), -1.0, 1.0)


@dataclass
class TunedConstant(Policy):
    """λ action ``lam`` and ρ action ``rho`` at every step."""

    lam: float = 0.0
    rho: float = 0.0
    dim: int = 2
    name: str = "tuned-constant"

    def action(self, progress: float, dim: int) -> np.ndarray:
        return _two(self.lam, self.rho, dim)


@dataclass
class TunedSchedule(Policy):
    """λ linear ``lam_start`` → ``lam_end``; ρ piecewise linear ``rho_start`` → ``rho_mid`` (at
    progress ``knee``) → ``rho_end`` (action units)."""

    lam_start: float = 0.0
    lam_end: float = 0.0
    rho_start: float = -1.0
    rho_mid: float = 0.0
    rho_end: float = 1.0
    knee: float = 0.5
    dim: int = 2
    name: str = "tuned-schedule"

    def action(self, progress: float, dim: int) -> np.ndarray:
        p = min(1.0, max(0.0, progress))
        lam = self.lam_start + p * (self.lam_end - self.lam_start)
        k = min(0.999, max(0.001, self.knee))
        if p <= k:
            rho = self.rho_start + (p / k) * (self.rho_mid - self.rho_start)
        else:
            rho = self.rho_mid + ((p - k) / (1.0 - k)) * (self.rho_end - self.rho_mid)
        return _two(lam, rho, dim)


@dataclass
class FeedbackController(Policy):
    """Closed-loop forget-scale controller (see the module docstring).

    Stateful: its memory (ρ so far, the EMAs and their references) restarts at every observation
    with progress 0 (a reset) and in :meth:`reset`. Deterministic given the observations.

    :param lam: λ action (held).
    :param rho0: ρ action of the first steps.
    :param gain: change of the ρ action per step.
    :param tol: allowed rise of the EMA of log10 ‖g_r‖ over its reference before ρ is cut.
    :param f_target: rise of the EMA of log10 L_f over its reference at which ρ stops rising.
    :param alpha: EMA weight of the newest observation.
    :param warmup: post-reset observations averaged into the references (ρ stays ``rho0``).
    """

    lam: float = 0.0
    rho0: float = -0.5
    gain: float = 0.05
    tol: float = 0.3
    f_target: float = 1.0
    alpha: float = 0.3
    warmup: int = 2
    dim: int = 2
    name: str = "tuned-feedback"
    _u: float = field(default=0.0, init=False, repr=False, compare=False)
    _n: int = field(default=0, init=False, repr=False, compare=False)
    _ref: np.ndarray = field(default_factory=lambda: np.zeros(2), init=False, repr=False, compare=False)
    _ema: np.ndarray = field(default_factory=lambda: np.zeros(2), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._u, self._n = float(self.rho0), 0
        self._ref, self._ema = np.zeros(2), np.zeros(2)

    def action(self, progress: float, dim: int) -> np.ndarray:
        return _two(self.lam, self._u, dim)

    def __call__(self, obs: np.ndarray, dim: int = 2) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float64).reshape(-1)
        if o[PROGRESS_INDEX] <= 0.0:  # a reset observation (computed on the probe batch): restart
            self.reset()
            return self.action(0.0, dim).astype(np.float32)
        x = np.array([o[_GR], o[_LF]])
        self._n += 1
        if self._n <= self.warmup:
            self._ref += x / self.warmup
            if self._n == self.warmup:
                self._ema = self._ref.copy()
            return self.action(float(o[PROGRESS_INDEX]), dim).astype(np.float32)
        self._ema = (1.0 - self.alpha) * self._ema + self.alpha * x
        rise = self._ema - self._ref
        if rise[0] > self.tol:
            self._u -= 2.0 * self.gain
        elif rise[1] < self.f_target:
            self._u += self.gain
        self._u = float(np.clip(self._u, -1.0, 1.0))
        return self.action(float(o[PROGRESS_INDEX]), dim).astype(np.float32)


FAMILIES: dict[str, type[Policy]] = {"constant": TunedConstant, "schedule": TunedSchedule,
                                     "feedback": FeedbackController}


def make_policy(family: str, params: dict[str, float]) -> Policy:
    """A new policy of ``family`` with ``params`` (names of :data:`SPACES`).

    :param family: ``"constant"``, ``"schedule"`` or ``"feedback"``.
    :param params: its parameters.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    unknown = set(params) - set(SPACES[family])
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} of family {family!r};"
                         f" known: {sorted(SPACES[family])}")
    return FAMILIES[family](**{k: float(v) for k, v in params.items()})


ASSETS = Path(__file__).resolve().parent / "assets"


def tuned_path(set_name: str, version: int | None = None, outcome_version: int | None = None) -> Path:
    """Where the committed parameters of ``set_name`` live (``assets/tuned-SET-vV-outcomeO.json``).

    :param set_name: instance set.
    :param version: set version (default: the registered one).
    :param outcome_version: outcome score version (default: the current one).
    """
    from unlearn_gym.envs.instances import INSTANCE_SETS
    from unlearn_gym.envs.outcome import OUTCOME_VERSION

    if set_name not in INSTANCE_SETS:
        raise ValueError(f"unknown instance set {set_name!r}; known sets: {sorted(INSTANCE_SETS)}")
    v = INSTANCE_SETS[set_name].version if version is None else version
    o = OUTCOME_VERSION if outcome_version is None else outcome_version
    return ASSETS / f"tuned-{set_name}-v{v}-outcome{o}.json"


def load_tuned_file(set_name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The committed search record of a set (parameters, budgets, seeds, wall times).

    :param set_name: instance set.
    :param path: another file of the same format.
    """
    p = Path(path) if path is not None else tuned_path(set_name)
    if not p.is_file():
        raise FileNotFoundError(f"no tuned parameters for set {set_name!r} at {p}; run"
                                f" `python benchmarks/tuned_baselines.py --set {set_name}` (or `unlearn-gym tune`)")
    return json.loads(p.read_text())


def load_tuned(set_name: str, path: str | Path | None = None) -> dict[str, Policy]:
    """The tuned policies of a set, by name: ``tuned-constant``, ``tuned-schedule``,
    ``tuned-feedback`` (searched on the train split) and ``oracle-constant:<instance>`` (one
    constant searched per instance, on search seeds only).

    :param set_name: instance set (e.g. ``"default"``).
    :param path: another file of the same format (default: the committed asset).
    """
    rec = load_tuned_file(set_name, path)
    out: dict[str, Policy] = {}
    for fam, r in rec["families"].items():
        out[ENTRY_NAMES[fam]] = make_policy(fam, r["params"])
    for inst, r in rec.get("per_instance_constant", {}).items():
        out[f"oracle-constant:{inst}"] = make_policy("constant", r["params"])
    return out
