"""SISS for the class-conditional VAE (docs/method.md §6b): one fixed noise level instead of a timestep.

With ``σ = 0.3`` and ``γ = sqrt(1 - σ²)`` the mixture is the DDPM's at a single noise level:
``m = γ z + σ ε`` with ``z = a`` where ``u < λ`` and ``z = x`` otherwise (the shared
:func:`~unlearn_gym.objectives.mixture.siss_mixture`), the importance weights are the same log-space
``w_x``, ``w_a`` (:func:`~unlearn_gym.objectives.core.importance_log_weights`) and the terms are
assembled by the same :func:`~unlearn_gym.objectives.core.weighted_siss_terms`, so every update rule
of :func:`~unlearn_gym.objectives.update.apply_update` applies unchanged.

Only the per-sample loss differs. The VAE encodes ``m`` (conditioned on the drawn component's
label), draws ``h = μ + σ_q ξ`` once, decodes it once, and the two losses of that single forward
pass are its negative ELBO against either target::

    L_x = (||D(h, y) - x||² + β KL(q(h | m, y) || N(0, I))) / D        β = 0.5, D = C·H·W
    L_a = (||D(h, y) - a||² + β KL(q(h | m, y) || N(0, I))) / D

The division by ``D`` keeps the package's convention (per-sample losses are per-pixel means, so
``Terms.loss_elements = D`` restores the pixel-sum units of the SISS reference code). The same
loss on ``m = γ x + σ ε`` alone is the VAE's pretraining loss (:func:`vae_loss`), as the DDPM's
SISS loss is its pretraining loss: a VAE trained this way is a denoising VAE at the SISS noise level.

Randomness: ``ε`` (``noise``) and ``ξ`` (``xi``) are image-shaped standard normal tensors; the VAE
uses the first ``latent_dim`` entries of ``xi`` (as its prior sampler does with its noise), so
common-random-number callers draw them without knowing the latent size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from unlearn_gym.device import rand, randn
from unlearn_gym.objectives.batches import SISSBatch
from unlearn_gym.objectives.core import LambdaLike, Terms, check_lambda, pixels, weighted_siss_terms
from unlearn_gym.objectives.mixture import siss_mixture


@dataclass(frozen=True)
class VAENoise:
    """The VAE's fixed SISS noise level and its KL weight (docs/method.md §6b).

    It takes the place of the DDPM's :class:`~unlearn_gym.diffusion.schedule.NoiseSchedule` in
    every objective call (see :func:`~unlearn_gym.objectives.family.objectives_for`).

    :param sigma: noise level σ of the mixture ``m = γ z + σ ε`` (0.3).
    :param beta: weight β of the encoder's KL in the per-sample loss (0.5).
    """

    sigma: float = 0.3
    beta: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 < self.sigma < 1.0):
            raise ValueError(f"sigma must be in (0, 1), got {self.sigma!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0.0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")

    @property
    def gamma(self) -> float:
        """``γ = sqrt(1 - σ²)`` (variance preserving, as the DDPM's forward process)."""
        return math.sqrt(1.0 - self.sigma**2)

    def corrupt(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``γ x + σ ε``.

        :param images: clean images.
        :param noise: ``ε``, same shape.
        """
        return self.gamma * images + self.sigma * noise


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, σ²) || N(0, I))`` per sample, summed over the latent dimensions.

    :param mu: ``(B, d)`` means.
    :param logvar: ``(B, d)`` log variances.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def vae_per_sample_loss(
    recon: torch.Tensor, target: torch.Tensor, kl: torch.Tensor, beta: float
) -> torch.Tensor:
    """``(||recon - target||² + β KL) / D`` per sample.

    :param recon: decoder output ``(B, C, H, W)``.
    :param target: the image it should reconstruct.
    :param kl: ``(B,)`` KL of the encoder (:func:`gaussian_kl`).
    :param beta: KL weight.
    """
    d = recon[0].numel()
    return ((recon - target).pow(2).flatten(1).sum(1) + beta * kl) / d


def _randn_like(shape: torch.Size, generator: torch.Generator | None, given: torch.Tensor | None,
                device: torch.device) -> torch.Tensor:
    """``given`` or fresh normals from the CPU ``generator``, on ``device`` (:mod:`unlearn_gym.device`)."""
    return randn(shape, generator, device) if given is None else given.to(device)


def vae_loss(
    model: nn.Module,
    level: VAENoise,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    xi: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain VAE loss: mean over the batch of ``L`` with ``m = γ x + σ ε`` and target ``x``.

    The pretraining loss, the retain loss of naive deletion and the env's divergence reference.

    :param model: a :class:`~unlearn_gym.vae.model.ConditionalVAE`.
    :param level: the noise level and KL weight.
    :param images: clean images.
    :param labels: their labels.
    :param generator: random source of whatever of ``noise``, ``xi`` is not given (``ε`` first).
    :param noise: optional ``ε`` (image-shaped).
    :param xi: optional ``ξ`` (image-shaped or ``(B, latent_dim)``).
    """
    noise = _randn_like(images.shape, generator, noise, images.device)
    xi = _randn_like(images.shape, generator, xi, images.device)
    recon, mu, logvar = model(level.corrupt(images, noise), labels, model.prior_latents(xi))
    return vae_per_sample_loss(recon, images, gaussian_kl(mu, logvar), level.beta).mean()


def vae_siss_terms(
    model: nn.Module,
    level: VAENoise,
    batch: SISSBatch,
    lam: LambdaLike,
    *,
    s: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    u: torch.Tensor | None = None,
    xi: torch.Tensor | None = None,
    other_noise: torch.Tensor | None = None,
    other_xi: torch.Tensor | None = None,
) -> Terms:
    """SISS with importance sampling for the VAE: one mixture draw, one forward pass, two targets.

    Same contract as :func:`~unlearn_gym.objectives.siss.siss_terms` (same :class:`Terms`, same
    coefficients and weights); see the module docstring for the loss.

    :param model: a :class:`~unlearn_gym.vae.model.ConditionalVAE`.
    :param level: the fixed noise level σ and KL weight β.
    :param batch: paired batch (see :class:`~unlearn_gym.objectives.batches.PairSampler`).
    :param lam: forget mixture weight λ in (0, 1) (float, or tensor for a differentiable λ).
    :param s: forget scale of the loss value (``s >= 0``).
    :param generator: random source, drawn in the order ``ε``, ``u``, ``ξ`` (then the other-label
        samples' ``ε``, ``ξ``), for whatever is not given.
    :param noise: optional ``ε`` ``(B, C, H, W)`` (common random numbers).
    :param u: optional uniforms ``(B,)`` deciding the component (``u < λ``: forget).
    :param xi: optional ``ξ`` of the encoder's reparameterisation (image-shaped or ``(B, latent_dim)``).
    :param other_noise: optional ``ε`` of the ``same-label`` other-label samples.
    :param other_xi: optional ``ξ`` for them.
    """
    check_lambda(lam)
    if s < 0:
        raise ValueError(f"s must be >= 0, got {s}")
    x, b = batch.x, batch.x.shape[0]
    noise = _randn_like(x.shape, generator, noise, x.device)
    u = rand((b,), generator, x.device) if u is None else u.to(x.device)
    xi = _randn_like(x.shape, generator, xi, x.device)
    mix = siss_mixture(x, batch.a, noise, u, lam, level.gamma, level.sigma)
    inputs, ys, xis = [mix.m], [torch.where(mix.from_a, batch.y_a, batch.y_x)], [model.prior_latents(xi)]
    if batch.x_other is not None:
        o_noise = _randn_like(batch.x_other.shape, generator, other_noise, x.device)
        o_xi = _randn_like(batch.x_other.shape, generator, other_xi, x.device)
        inputs.append(level.corrupt(batch.x_other, o_noise))
        ys.append(batch.y_other)
        xis.append(model.prior_latents(o_xi))
    recon, mu, logvar = model(torch.cat(inputs), torch.cat(ys), torch.cat(xis))
    kl = gaussian_kl(mu, logvar)
    l_x = vae_per_sample_loss(recon[:b], x, kl[:b], level.beta)
    l_a = vae_per_sample_loss(recon[:b], batch.a, kl[:b], level.beta)
    l_o = None
    if batch.x_other is not None:
        l_o = vae_per_sample_loss(recon[b:], batch.x_other, kl[b:], level.beta).mean()
    return weighted_siss_terms(l_x, l_a, mix, lam, batch, s, pixels(x), l_o)


def vae_siss_no_is_terms(
    model: nn.Module,
    level: VAENoise,
    batch: SISSBatch,
    *,
    s: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    xi: torch.Tensor | None = None,
) -> Terms:
    """SISS (No IS) for the VAE: ``γx + σε`` and ``γa + σε`` with the same ``ε`` and ``ξ``, no weights.

    The plain retain and forget losses (the env's ``state="exact"`` features). One forward pass of
    ``2B`` (``3B`` with ``same-label`` batches).

    :param model: a :class:`~unlearn_gym.vae.model.ConditionalVAE`.
    :param level: the noise level and KL weight.
    :param batch: paired batch.
    :param s: forget scale of the loss value.
    :param generator: random source (``ε``, then ``ξ``, then the other-label samples').
    :param noise: optional shared ``ε``.
    :param xi: optional shared ``ξ``.
    """
    x, a, b = batch.x, batch.a, batch.x.shape[0]
    noise = _randn_like(x.shape, generator, noise, x.device)
    xi = model.prior_latents(_randn_like(x.shape, generator, xi, x.device))
    inputs, targets = [level.corrupt(x, noise), level.corrupt(a, noise)], [x, a]
    ys, xis = [batch.y_x, batch.y_a], [xi, xi]
    if batch.x_other is not None:
        o_noise = randn(batch.x_other.shape, generator, x.device)
        inputs.append(level.corrupt(batch.x_other, o_noise))
        ys.append(batch.y_other)
        xis.append(model.prior_latents(randn(batch.x_other.shape, generator, x.device)))
        targets.append(batch.x_other)
    recon, mu, logvar = model(torch.cat(inputs), torch.cat(ys), torch.cat(xis))
    per = vae_per_sample_loss(recon, torch.cat(targets), gaussian_kl(mu, logvar), level.beta)
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
