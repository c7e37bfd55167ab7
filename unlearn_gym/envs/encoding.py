"""Action decoding and observation encoding of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv`."""

from __future__ import annotations

import math

import numpy as np

#: log10 values of the four positive state features are clipped to this range.
LOG_CLIP = 10.0
#: Observation names, in order.
OBS_NAMES = ("log10_L_r", "log10_L_f", "log10_grad_norm_r", "log10_grad_norm_f", "lambda_prev", "progress")


def observation_bounds() -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the 6-dimensional observation box."""
    low = np.array([-LOG_CLIP] * 4 + [0.0, 0.0], dtype=np.float32)
    high = np.array([LOG_CLIP] * 4 + [1.0, 1.0], dtype=np.float32)
    return low, high


def safe_log10(v: float) -> float:
    """``log10(v)`` clipped to ``[-LOG_CLIP, LOG_CLIP]``; 0 and negatives map to the low end, NaN and
    +inf to the high end (a non-finite value only occurs on divergence)."""
    if math.isnan(v) or v == math.inf:
        return LOG_CLIP
    if v <= 0.0:
        return -LOG_CLIP
    return min(LOG_CLIP, max(-LOG_CLIP, math.log10(v)))


def encode_observation(
    l_r: float, l_f: float, g_r: float, g_f: float, lam_prev: float, progress: float
) -> np.ndarray:
    """The float32 observation ``(log10 L_r, log10 L_f, log10 ||g_r||, log10 ||g_f||, λ_prev, t/T)``.

    :param l_r: retain-loss estimate.
    :param l_f: forget-loss estimate.
    :param g_r: retain gradient norm.
    :param g_f: forget gradient norm.
    :param lam_prev: the previous λ.
    :param progress: ``t / T``.
    """
    return np.array(
        [safe_log10(l_r), safe_log10(l_f), safe_log10(g_r), safe_log10(g_f),
         min(1.0, max(0.0, lam_prev)), min(1.0, max(0.0, progress))],
        dtype=np.float32,
    )


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
