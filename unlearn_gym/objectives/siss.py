"""SISS and its reference baselines for the DDPM as differentiable loss terms (docs/method.md §1).

Every function here is pure: it takes a model, a noise schedule, a batch and an explicit
``torch.Generator`` (or pre-drawn noise) and returns a :class:`Terms` object holding the two
differentiable terms the update rules combine (a retain term and a forget term) plus detached
diagnostics. :func:`unlearn_gym.objectives.update.apply_update` turns them into one optimizer step.
What every model family shares (:class:`Terms`, the importance weights, :func:`weighted_siss_terms`)
is in :mod:`unlearn_gym.objectives.core`; naive deletion, which works for every family, is
:func:`unlearn_gym.objectives.family.naive_deletion_terms`.

Conventions: per-sample losses are means over pixels of the squared ε error (the pretraining loss),
so ``L`` values are O(0.01-1) at every resolution. The importance weights use the exact Gaussian
log-densities (sums over pixels). Every :class:`Terms` records the number of pixels its per-sample
losses average over (``loss_elements = C·H·W``): the SISS reference code *sums* over pixels, and
:func:`~unlearn_gym.objectives.update.apply_update` uses this factor to give the reference's
constants (``rescale``/``clip`` c, the total-norm clip) their reference meaning.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn_gym.device import rand, randn
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives.batches import SISSBatch
from unlearn_gym.objectives.core import LambdaLike, Terms, check_lambda, per_sample_mse, pixels, weighted_siss_terms
from unlearn_gym.objectives.mixture import siss_mixture


def _draw(
    schedule: NoiseSchedule, shape: torch.Size, generator: torch.Generator | None,
    noise: torch.Tensor | None, t: torch.Tensor | None, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noise, t)``: given ones, or fresh draws from the CPU ``generator`` (timesteps first), on
    ``device`` (:mod:`unlearn_gym.device`)."""
    t = schedule.sample_timesteps(shape[0], generator, device) if t is None else t.to(device)
    noise = randn(shape, generator, device) if noise is None else noise.to(device)
    return noise, t


def siss_terms(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: SISSBatch,
    lam: LambdaLike,
    *,
    s: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    u: torch.Tensor | None = None,
    other_noise: torch.Tensor | None = None,
    other_t: torch.Tensor | None = None,
) -> Terms:
    """SISS with importance sampling: one mixture sample per pair, one forward pass, two targets.

    ``m_t = γ_t z + σ_t ε`` where ``z = a`` with probability λ (``u < λ``) and ``z = x`` otherwise;
    ``ε`` and ``t`` are shared by both targets ``ε_x = ε + γ (z - x)/σ`` and ``ε_a = ε + γ (z - a)/σ``.
    The forward pass is conditioned on the label of the drawn component (for ``same-label`` batches
    both labels agree). Terms: ``retain = coef_x · mean(w_x L_x) [+ coef_other · mean(L_other)]``,
    ``forget = coef_a · mean(w_a L_a)``, ``loss = retain - (1 + s) · forget``.

    :param model: ε-prediction network ``model(x_t, t, y)``.
    :param schedule: its noise schedule.
    :param batch: paired batch (see :class:`~unlearn_gym.objectives.batches.PairSampler`).
    :param lam: forget mixture weight λ in (0, 1) (float, or tensor for a differentiable λ).
    :param s: forget scale of the loss value (``s >= 0``; 0 = unbiased naive-deletion estimate).
    :param generator: random source for whatever of ``noise``, ``t``, ``u`` is not given.
    :param noise: optional ε ``(B, C, H, W)`` (common random numbers).
    :param t: optional timesteps ``(B,)``.
    :param u: optional uniforms ``(B,)`` deciding the component (``u < λ``: forget).
    :param other_noise: optional ε for the ``same-label`` other-label samples.
    :param other_t: optional timesteps for them.
    """
    check_lambda(lam)
    if s < 0:
        raise ValueError(f"s must be >= 0, got {s}")
    x = batch.x
    noise, t = _draw(schedule, x.shape, generator, noise, t, x.device)
    u = rand((x.shape[0],), generator, x.device) if u is None else u.to(x.device)
    g, sig = schedule.coefficients(t, x.ndim)
    mix = siss_mixture(x, batch.a, noise, u, lam, g, sig)
    y = torch.where(mix.from_a, batch.y_a, batch.y_x)
    inputs, ts, ys = [mix.m], [t], [y]
    if batch.x_other is not None:
        o_noise, o_t = _draw(schedule, batch.x_other.shape, generator, other_noise, other_t, x.device)
        inputs.append(schedule.q_sample(batch.x_other, o_t, o_noise))
        ts.append(o_t)
        ys.append(batch.y_other)
    pred = model(torch.cat(inputs), torch.cat(ts), torch.cat(ys))
    pred_m = pred[: x.shape[0]]
    l_x, l_a = per_sample_mse(pred_m, mix.eps_x), per_sample_mse(pred_m, mix.eps_a)
    l_o = per_sample_mse(pred[x.shape[0]:], o_noise).mean() if batch.x_other is not None else None
    return weighted_siss_terms(l_x, l_a, mix, lam, batch, s, pixels(x), l_o)


def siss_no_is_terms(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: SISSBatch,
    *,
    s: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
) -> Terms:
    """SISS (No IS): ``x_t`` and ``a_t`` with the same ε and t, each with its own label, no weights.

    Costs one forward pass of ``2B`` (``3B`` with ``same-label`` batches).

    :param model: ε-prediction network.
    :param schedule: its noise schedule.
    :param batch: paired batch.
    :param s: forget scale of the loss value.
    :param generator: random source.
    :param noise: optional shared ε.
    :param t: optional shared timesteps.
    """
    x, a = batch.x, batch.a
    noise, t = _draw(schedule, x.shape, generator, noise, t, x.device)
    b = x.shape[0]
    inputs = [schedule.q_sample(x, t, noise), schedule.q_sample(a, t, noise)]
    ts, ys, targets = [t, t], [batch.y_x, batch.y_a], [noise, noise]
    if batch.x_other is not None:
        o_noise, o_t = _draw(schedule, batch.x_other.shape, generator, None, None, x.device)
        inputs.append(schedule.q_sample(batch.x_other, o_t, o_noise))
        ts.append(o_t)
        ys.append(batch.y_other)
        targets.append(o_noise)
    per = per_sample_mse(model(torch.cat(inputs), torch.cat(ts), torch.cat(ys)), torch.cat(targets))
    l_x, l_a = per[:b].mean(), per[b : 2 * b].mean()
    retain = batch.coef_x * l_x
    stats = {"L_x": l_x.detach(), "L_a": l_a.detach()}
    if batch.x_other is not None:
        l_o = per[2 * b :].mean()
        retain = retain + batch.coef_other * l_o
        stats["L_other"] = l_o.detach()
    forget = batch.coef_a * l_a
    return Terms(
        retain=retain, forget=forget, loss=retain - (1.0 + s) * forget,
        retain_norm=batch.coef_x + batch.coef_other, forget_norm=batch.coef_a, stats=stats,
        loss_elements=pixels(x),
    )


def denoising_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain DDPM loss ``mean ||ε_θ(x_t, t, y) - ε||²`` (differentiable scalar).

    :param model: ε-prediction network.
    :param schedule: its noise schedule.
    :param images: clean images.
    :param labels: their labels.
    :param generator: random source.
    :param noise: optional ε.
    :param t: optional timesteps.
    """
    noise, t = _draw(schedule, images.shape, generator, noise, t, images.device)
    return per_sample_mse(model(schedule.q_sample(images, t, noise), t, labels), noise).mean()


def neggrad_terms(
    model: nn.Module, schedule: NoiseSchedule, a: torch.Tensor, y_a: torch.Tensor,
    *, s: float = 0.0, generator: torch.Generator | None = None,
) -> Terms:
    """NegGrad: ascend the denoising loss of the forget data only (``loss = -(1+s) L_a``).

    :param model: ε-prediction network.
    :param schedule: its noise schedule.
    :param a: forget images.
    :param y_a: their labels.
    :param s: forget scale of the loss value.
    :param generator: random source.
    """
    l_a = denoising_loss(model, schedule, a, y_a, generator=generator)
    return Terms(retain=None, forget=l_a, loss=-(1.0 + s) * l_a, stats={"L_a": l_a.detach()},
                 loss_elements=pixels(a))


def erasediff_terms(
    model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, y_x: torch.Tensor,
    a: torch.Tensor, y_a: torch.Tensor, *, generator: torch.Generator | None = None,
) -> Terms:
    """EraseDiff: retain denoising loss plus a forget loss whose target is U[0, 1) noise.

    The forget term is *descended* (``forget_sign = +1``); combine with the ``erasediff`` rule,
    ``g = g_x + max(η - <g_x, g_a>/||g_a||², 0) g_a``. One forward pass of ``2B``.

    :param model: ε-prediction network.
    :param schedule: its noise schedule.
    :param x: retain images.
    :param y_x: their labels.
    :param a: forget images.
    :param y_a: their labels.
    :param generator: random source (noise, timesteps and the uniform targets).
    """
    b = x.shape[0]
    imgs = torch.cat([x, a])
    noise, t = _draw(schedule, imgs.shape, generator, None, None, imgs.device)
    target_a = rand(a.shape, generator, imgs.device)
    pred = model(schedule.q_sample(imgs, t, noise), t, torch.cat([y_x, y_a]))
    l_x = per_sample_mse(pred[:b], noise[:b]).mean()
    l_u = per_sample_mse(pred[b:], target_a).mean()
    return Terms(retain=l_x, forget=l_u, loss=l_x + l_u, forget_sign=1.0,
                 stats={"L_x": l_x.detach(), "L_a": l_u.detach()}, loss_elements=pixels(x))
