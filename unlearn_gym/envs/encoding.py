"""Action decoding and observation encoding of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

#: log10 values of the four positive state features are clipped to this range.
LOG_CLIP = 10.0
#: The raw per-step quantities the state features are computed from (an update's terms, or the
#: exact state): retain and forget loss estimates, their gradient norms and the gradients' cosine.
STATE_KEYS = ("L_r", "L_f", "grad_norm_r", "grad_norm_f", "grad_cosine")
#: log10 ratios to θ_0's values (``observation="unitless"``) are clipped to this range.
RATIO_CLIP = 5.0


def safe_log10(v: float) -> float:
    """``log10(v)`` clipped to ``[-LOG_CLIP, LOG_CLIP]``; 0 and negatives map to the low end, NaN and
    +inf to the high end (a non-finite value only occurs on divergence)."""
    if math.isnan(v) or v == math.inf:
        return LOG_CLIP
    if v <= 0.0:
        return -LOG_CLIP
    return min(LOG_CLIP, max(-LOG_CLIP, math.log10(v)))


def _unit(v: float) -> float:
    return min(1.0, max(0.0, v))


@dataclass(frozen=True)
class Feature:
    """One observation component.

    :param name: its name (``OBS_NAMES``; keys of logs and plots).
    :param symbol: how the docs write it.
    :param description: what it is.
    :param low: lower bound of the observation box.
    :param high: upper bound.
    :param encode: the value from the step's quantities (see :func:`encode_observation`).
    """

    name: str
    symbol: str
    description: str
    low: float
    high: float
    encode: Callable[[Mapping[str, float]], float]


def _log_feature(key: str, symbol: str, description: str) -> Feature:
    return Feature(f"log10_{key}", f"log10 {symbol}", description, -LOG_CLIP, LOG_CLIP,
                   lambda q: safe_log10(q[key]))


#: The observation, in order: adding a feature is one entry here (it drives the encoding, the
#: space's bounds, the env docstring's table and the policies' progress index).
FEATURES: tuple[Feature, ...] = (
    _log_feature("L_r", "L_r", "retain-loss estimate"),
    _log_feature("L_f", "L_f", "forget-loss estimate"),
    _log_feature("grad_norm_r", "‖g_r‖", "retain gradient norm"),
    _log_feature("grad_norm_f", "‖g_f‖", "forget gradient norm"),
    Feature("lambda_prev", "λ_prev", "the previous λ (0.5 after a reset)", 0.0, 1.0,
            lambda q: _unit(q["lambda_prev"])),
    Feature("progress", "t/T", "progress through the episode", 0.0, 1.0, lambda q: _unit(q["progress"])),
)

def _ratio_feature(key: str, symbol: str, description: str) -> Feature:
    def encode(q: Mapping[str, float]) -> float:
        v, v0 = q[key], q[f"{key}_0"]
        if v0 <= 0.0 or not math.isfinite(v0):
            return 0.0
        return max(-RATIO_CLIP, min(RATIO_CLIP, safe_log10(v) - safe_log10(v0)))

    return Feature(f"ratio_{key}", f"log10 {symbol}/{symbol}(θ_0)", description, -RATIO_CLIP, RATIO_CLIP, encode)


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if math.isnan(v) else min(hi, max(lo, v))


#: ``observation="unitless"``: the paper's layout with each loss and norm as its log10 ratio to θ_0's
#: value (so instances of any scale read alike), then the gradients' cosine, the forget scale used
#: last (relative to the instance's constant), the remaining budget and instance features.
#: Every table keeps ``t/T`` at :data:`PROGRESS_INDEX`.
UNITLESS_FEATURES: tuple[Feature, ...] = (
    _ratio_feature("L_r", "L_r", "retain loss relative to θ_0's"),
    _ratio_feature("L_f", "L_f", "forget loss relative to θ_0's"),
    _ratio_feature("grad_norm_r", "‖g_r‖", "retain gradient norm relative to θ_0's"),
    _ratio_feature("grad_norm_f", "‖g_f‖", "forget gradient norm relative to θ_0's"),
    FEATURES[4],
    FEATURES[5],
    Feature("grad_cosine", "cos(g_r, g_f)", "cosine between the retain and forget gradients", -1.0, 1.0,
            lambda q: _clip(q["grad_cosine"], -1.0, 1.0)),
    Feature("log10_scale_rel", "log10 ρ_prev/ρ", "the forget scale used last, relative to the instance's",
            -3.0, 3.0, lambda q: _clip(safe_log10(q["scale_prev"] / q["scale"]), -3.0, 3.0)),
    Feature("log10_steps_left", "log10 (1 + T - t)", "the remaining budget", 0.0, 4.0,
            lambda q: _clip(math.log10(1.0 + q["horizon"] - q["t"]), 0.0, 4.0)),
    Feature("log2_batch", "log2 B", "instance: pairs per step", 0.0, 12.0,
            lambda q: _clip(math.log2(q["batch_size"]), 0.0, 12.0)),
    Feature("log10_lr", "log10 lr", "instance: learning rate", -7.0, -1.0,
            lambda q: _clip(math.log10(q["lr"]), -7.0, -1.0)),
    Feature("data_ratio", "contamination", "instance: trousers per real 1 of the pretraining data", 0.0, 1.0,
            lambda q: _clip(q["data_ratio"], 0.0, 1.0)),
)
#: The observation modes: ``observation=`` name -> feature table.
FEATURE_TABLES: dict[str, tuple[Feature, ...]] = {"paper": FEATURES, "unitless": UNITLESS_FEATURES}
#: Observation names, in order (the paper's mode).
OBS_NAMES = tuple(f.name for f in FEATURES)
#: Index of ``t/T`` (open-loop schedules read it) in every table.
PROGRESS_INDEX = OBS_NAMES.index("progress")
assert all(t[PROGRESS_INDEX].name == "progress" for t in FEATURE_TABLES.values())


def observation_bounds(features: tuple[Feature, ...] = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the observation box.

    :param features: the feature table.
    """
    return (np.array([f.low for f in features], dtype=np.float32),
            np.array([f.high for f in features], dtype=np.float32))


def encode_observation(quantities: Mapping[str, float], features: tuple[Feature, ...] = FEATURES) -> np.ndarray:
    """The float32 observation: each feature of the table computed from ``quantities``.

    :param quantities: :data:`STATE_KEYS`, ``lambda_prev`` and ``progress``; the unitless table also
        reads θ_0's values (``<key>_0``), ``scale_prev``, ``scale``, ``t``, ``horizon``, ``batch_size``,
        ``lr`` and ``data_ratio``.
    :param features: the feature table.
    """
    return np.array([f.encode(quantities) for f in features], dtype=np.float32)


def observation_table(features: tuple[Feature, ...] = FEATURES) -> str:
    """The Markdown table of the observation (the env docstring shows it).

    :param features: the feature table.
    """
    rows = ["| index | observation | range |", "|---|---|---|"]
    rows += [f"| {i} | {f.symbol}, {f.description} | [{f.low:g}, {f.high:g}] |" for i, f in enumerate(features)]
    return "\n".join(rows)


def action_array(action: object, dim: int) -> np.ndarray:
    """The action as a float64 vector of ``dim`` components, or a ``ValueError`` saying what is wrong.

    A scalar is accepted for ``dim == 1`` and any array of ``dim`` elements (e.g. ``(1, dim)``)
    is flattened.

    :param action: the raw action passed to ``step``.
    :param dim: expected number of components (``env.action_space.shape[0]``).
    :raises ValueError: when the action is ``None``, not numeric, of the wrong size or NaN.
    """
    hint = f"pass {dim} number(s) in [-1, 1], e.g. env.action_space.sample()"
    if action is None:
        raise ValueError(f"the action is missing (got None): {hint}")
    try:
        raw = np.asarray(action)
    except (TypeError, ValueError) as e:  # ragged nested sequences
        raise ValueError(f"action is not a numeric array ({e}): {hint}; got {action!r}") from None
    if raw.dtype.kind not in "iufO":  # bool, complex, str, bytes, dates are refused
        raise ValueError(f"action must be numeric, got dtype {raw.dtype} ({action!r}): {hint}")
    try:
        a = raw.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"action must be numeric, got {action!r}: {hint}") from None
    if a.shape != (dim,):
        raise ValueError(f"action must have {dim} component(s) (action_space.shape == ({dim},)),"
                         f" got shape {raw.shape}: {action!r}")
    if np.isnan(a).any():
        raise ValueError(f"action contains NaN (or None): {action!r}; {hint}")
    return a


def decode_action(
    action: np.ndarray | list | float,
    dim: int,
    lambda_range: tuple[float, float],
    scale_range: tuple[float, float] | None = None,
) -> tuple[float, float | None]:
    """Map an action in ``[-1, 1]^dim`` to ``(λ, forget scale or None)``.

    Components are clipped to ``[-1, 1]`` (so ±inf map to the ends); a missing (``None``),
    non-numeric, wrongly-sized or NaN action raises ``ValueError`` (see :func:`action_array`).
    ``λ = λ_min + (a_0 + 1)/2 (λ_max - λ_min)`` (as ``mid + a_0 · half-width``);
    for ``dim == 2`` the scale is log-uniform:
    ``exp(log lo + (a_1 + 1)/2 (log hi - log lo))``.

    :param action: the raw action.
    :param dim: expected number of components (1 or 2).
    :param lambda_range: ``(λ_min, λ_max)``.
    :param scale_range: ``(lo, hi)`` of the forget scale (``dim == 2`` only).
    """
    a = np.clip(action_array(action, dim), -1.0, 1.0)
    lo, hi = lambda_range
    lam = 0.5 * (lo + hi) + 0.5 * a[0] * (hi - lo)  # exactly the midpoint for a = 0
    if dim == 1:
        return float(lam), None
    assert scale_range is not None
    s_lo, s_hi = scale_range
    scale = math.exp(math.log(s_lo) + 0.5 * (a[1] + 1.0) * (math.log(s_hi) - math.log(s_lo)))
    return float(lam), float(scale)
