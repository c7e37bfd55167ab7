"""The SISS core shared by every model family: :class:`Terms`, the λ check, the importance weights
and the weighted terms of one mixture draw.

The DDPM's objectives (:mod:`~unlearn_gym.objectives.siss`) and the VAE's
(:mod:`~unlearn_gym.objectives.vae`) differ only in their per-sample losses; both turn them into the
same :class:`Terms` with :func:`weighted_siss_terms`, and
:func:`~unlearn_gym.objectives.update.apply_update` turns a :class:`Terms` into one optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from unlearn_gym.objectives.batches import SISSBatch
from unlearn_gym.objectives.mixture import Mixture

LambdaLike = float | torch.Tensor


@dataclass
class Terms:
    """The output of one objective evaluation.

    :param retain: differentiable weighted retain term (scalar), or ``None`` (NegGrad).
    :param forget: differentiable weighted forget term (scalar), or ``None`` (naive deletion).
    :param loss: differentiable paper loss value ``retain - (1 + s) forget`` (scalar).
    :param retain_norm: divide ``retain`` (and its gradient) by this to get the base retain loss
        estimate ``L_r`` (the coefficient sum, e.g. ``n/(n-k)``).
    :param forget_norm: divide ``forget`` by this to get ``L_f`` (``k/(n-k)``).
    :param forget_sign: ``-1``: the forget term is ascended (SISS, NegGrad); ``+1``: descended
        (EraseDiff's noise target).
    :param stats: detached 0-d tensors: ``L_x``, ``L_a`` (importance-weighted means), weight
        statistics, ``frac_forget``, ...
    :param loss_elements: number of elements each per-sample loss averages over (``C·H·W``);
        ``loss_elements`` times a gradient is the gradient of the pixel-sum loss of the SISS
        reference code. 1 for terms that already sum.
    """

    retain: torch.Tensor | None
    forget: torch.Tensor | None
    loss: torch.Tensor
    retain_norm: float = 1.0
    forget_norm: float = 1.0
    forget_sign: float = -1.0
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_elements: int = 1


def pixels(images: torch.Tensor) -> int:
    """Elements per sample of an image batch (``C·H·W``)."""
    return int(images[0].numel())


def check_lambda(lam: LambdaLike) -> None:
    """Raise ``ValueError`` unless a float λ is finite and in (0, 1) (a tensor λ passes unchecked).

    :param lam: forget mixture weight.
    """
    if isinstance(lam, torch.Tensor):
        return  # differentiable callers (adaptive λ) keep their own range
    if not (math.isfinite(lam) and 0.0 < lam < 1.0):
        raise ValueError(f"lambda must be a finite number in (0, 1), got {lam!r}")


def importance_log_weights(
    d_x: torch.Tensor, d_a: torch.Tensor, lam: LambdaLike
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log importance weights ``(log w_x, log w_a)`` of the SISS mixture, in float64.

    ``w_x = q(m|x) / q_λ(m|x,a) = 1 / ((1-λ) + λ exp(d_x - d_a))`` and
    ``w_a = 1 / ((1-λ) exp(d_a - d_x) + λ)`` computed with ``logaddexp``, so they stay finite (in
    ``[0, 1/(1-λ)]`` and ``[0, 1/λ]``) for any finite ``d_x - d_a``. Differentiable in ``λ``.

    :param d_x: ``||m - γ x||² / (2 σ²)`` per sample.
    :param d_a: ``||m - γ a||² / (2 σ²)`` per sample.
    :param lam: mixture weight of the forget component, in (0, 1); a float or a tensor
        broadcastable to ``d_x``.
    """
    check_lambda(lam)
    lam64 = lam.double() if isinstance(lam, torch.Tensor) else torch.tensor(float(lam), dtype=torch.float64)
    diff = d_x.double() - d_a.double()
    log_l, log_1l = torch.log(lam64), torch.log1p(-lam64)
    log_wx = -torch.logaddexp(log_1l + torch.zeros_like(diff), log_l + diff)
    log_wa = -torch.logaddexp(log_1l - diff, log_l + torch.zeros_like(diff))
    return log_wx, log_wa


def importance_weights(d_x: torch.Tensor, d_a: torch.Tensor, lam: LambdaLike) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_x, w_a)`` in float64; see :func:`importance_log_weights`.

    :param d_x: ``||m - γ x||² / (2 σ²)`` per sample.
    :param d_a: ``||m - γ a||² / (2 σ²)`` per sample.
    :param lam: forget mixture weight in (0, 1).
    """
    log_wx, log_wa = importance_log_weights(d_x, d_a, lam)
    return log_wx.exp(), log_wa.exp()


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all but the first dimension of ``(pred - target)²``."""
    return (pred - target).pow(2).flatten(1).mean(1)


def _weight_stats(prefix: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    s1, s2 = w.sum(), w.pow(2).sum()
    ess = torch.where(s2 > 0, s1 * s1 / s2.clamp_min(1e-300), torch.zeros_like(s1)) / w.numel()
    return {f"{prefix}_mean": w.mean(), f"{prefix}_max": w.max(), f"{prefix}_ess": ess}


def weighted_siss_terms(
    l_x: torch.Tensor, l_a: torch.Tensor, mix: Mixture, lam: LambdaLike, batch: SISSBatch, s: float,
    loss_elements: int, l_other: torch.Tensor | None = None,
) -> Terms:
    """The SISS :class:`Terms` from per-sample losses on one mixture draw (any model family).

    ``retain = coef_x · mean(w_x L_x) [+ coef_other · l_other]``, ``forget = coef_a · mean(w_a L_a)``,
    ``loss = retain - (1 + s) · forget`` with the log-space weights of :func:`importance_log_weights`.

    :param l_x: ``(B,)`` per-sample losses against the retain targets.
    :param l_a: ``(B,)`` per-sample losses against the forget targets.
    :param mix: the mixture draw (its ``d_x``, ``d_a`` give the weights).
    :param lam: λ (a tensor keeps the terms differentiable in λ).
    :param batch: the batch (coefficients).
    :param s: forget scale of the loss value.
    :param loss_elements: elements each per-sample loss averages over.
    :param l_other: ``same-label`` batches: mean plain loss of the other-label samples.
    """
    log_wx, log_wa = importance_log_weights(mix.d_x, mix.d_a, lam)
    w_x, w_a = log_wx.exp().float(), log_wa.exp().float()
    est_x, est_a = (w_x * l_x).mean(), (w_a * l_a).mean()
    retain = batch.coef_x * est_x
    stats = {"L_x": est_x.detach(), "L_a": est_a.detach(), "frac_forget": mix.from_a.float().mean()}
    if l_other is not None:
        retain = retain + batch.coef_other * l_other
        stats["L_other"] = l_other.detach()
    forget = batch.coef_a * est_a
    stats.update(_weight_stats("w_x", w_x.detach()))
    stats.update(_weight_stats("w_a", w_a.detach()))
    return Terms(
        retain=retain, forget=forget, loss=retain - (1.0 + s) * forget,
        retain_norm=batch.coef_x + batch.coef_other, forget_norm=batch.coef_a, forget_sign=-1.0,
        stats=stats, loss_elements=loss_elements,
    )
