"""Statistics of the benchmark and the agents: means with 95 % confidence intervals and paired comparisons.

Below both its users (:mod:`unlearn_gym.benchmark` and :mod:`unlearn_gym.rl`), so neither imports the other.

Every cell of a table is the mean over seeds with the half-width of its Student-t 95 % interval.
A comparison of two methods pairs their cells by seed (same seed = same batches, noise and
evaluation noise), so the interval is that of the per-seed differences (a paired t-test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % confidence interval (Student t; NaN half-width for one value).

    :param values: the samples (non-finite ones are dropped).
    """
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(a) < 2:
        return (float(a.mean()) if len(a) else math.nan), math.nan
    from scipy.stats import t

    return float(a.mean()), float(t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))


@dataclass
class Paired:
    """A paired comparison ``a - b`` over the seeds both have.

    :param n: number of pairs.
    :param mean: mean difference.
    :param ci: half-width of its 95 % interval (NaN below 2 pairs).
    :param p: two-sided p-value of the paired t-test (NaN below 2 pairs or with zero spread).
    """

    n: int
    mean: float
    ci: float
    p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """Paired difference ``a - b`` over the seeds present (and finite) in both.

    :param a: value per seed of the first method.
    :param b: value per seed of the second.
    """
    seeds = sorted(s for s in a if s in b and _finite(a[s]) and _finite(b[s]))
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    mean, half = ci95(d) if len(d) else (math.nan, math.nan)
    p = math.nan
    if len(d) >= 2 and d.std(ddof=1) > 0:
        from scipy.stats import ttest_1samp

        p = float(ttest_1samp(d, 0.0).pvalue)
    elif len(d) >= 2 and d.std(ddof=1) == 0:
        p = 1.0 if d[0] == 0 else 0.0
    return Paired(n=len(d), mean=mean, ci=half, p=p)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def better(p: Paired, direction: int, alpha: float = 0.05) -> bool:
    """Whether the difference is significantly in the good direction.

    :param p: the paired comparison ``a - b``.
    :param direction: +1 when higher is better, -1 when lower is better.
    :param alpha: significance level of the paired t-test.
    """
    return p.n >= 2 and math.isfinite(p.p) and p.p < alpha and direction * p.mean > 0


def worse(p: Paired, direction: int, alpha: float = 0.05) -> bool:
    """Whether the difference is significantly in the bad direction (see :func:`better`)."""
    return better(p, -direction, alpha)


def fmt_ci(mean: float, half: float, digits: int = 3) -> str:
    """``"m ± h"`` (``"m"`` when the half-width is NaN; ``"–"`` when the mean is).

    :param mean: the mean.
    :param half: the half-width.
    :param digits: significant digits.
    """
    if mean is None or not math.isfinite(mean):
        return "–"
    if half is None or not math.isfinite(half):
        return _g(mean, digits)
    if abs(half) < 1e-9 * max(1.0, abs(mean)):  # identical values up to rounding
        half = 0.0
    return f"{_g(mean, digits)} ± {_g(half, 2)}"


def _g(x: float, digits: int) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:.0f}" if abs(x) < 1e7 else f"{x:.{digits - 1}e}"
    if abs(x) < 10 ** -(digits):
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"
