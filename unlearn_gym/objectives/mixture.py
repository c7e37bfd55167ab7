"""The SISS mixture ``q_λ(m | x, a) = (1-λ) N(γx, σ²I) + λ N(γa, σ²I)``, shared by every model family.

The DDPM draws it at per-sample noise levels ``(γ_t, σ_t)`` (:func:`~unlearn_gym.objectives.siss.siss_terms`),
the VAE at one fixed level (:func:`~unlearn_gym.objectives.vae.vae_siss_terms`); both turn the draw into
importance-weighted terms with :func:`~unlearn_gym.objectives.core.weighted_siss_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Mixture:
    """One draw of the SISS mixture ``m = γ z + σ ε`` (``z = a`` where ``u < λ``, else ``x``).

    :param m: the mixture samples (the shared network input).
    :param from_a: ``(B,)`` bool, where the forget component was drawn.
    :param eps_x: ``(m - γ x)/σ``, the noise that explains ``m`` from ``x``.
    :param eps_a: ``(m - γ a)/σ``.
    :param d_x: ``||m - γ x||² / (2σ²)`` per sample, float64.
    :param d_a: ``||m - γ a||² / (2σ²)`` per sample, float64.
    """

    m: torch.Tensor
    from_a: torch.Tensor
    eps_x: torch.Tensor
    eps_a: torch.Tensor
    d_x: torch.Tensor
    d_a: torch.Tensor


def siss_mixture(
    x: torch.Tensor, a: torch.Tensor, noise: torch.Tensor, u: torch.Tensor, lam: float | torch.Tensor,
    gamma: torch.Tensor | float, sigma: torch.Tensor | float,
) -> Mixture:
    """Draw ``m`` from ``q_λ(m | x, a) = (1-λ) N(γx, σ²I) + λ N(γa, σ²I)`` with given ``ε`` and ``u``.

    Shared by every model family: the DDPM passes per-sample ``(γ_t, σ_t)``, the VAE one fixed level.

    :param x: retain-side images ``(B, C, H, W)``.
    :param a: forget images, same shape.
    :param noise: ``ε``, same shape.
    :param u: ``(B,)`` uniforms; ``u < λ`` selects the forget component.
    :param lam: λ (a float or a 0-d tensor; only its value is used here).
    :param gamma: ``γ``, a float or a tensor broadcastable to ``x``.
    :param sigma: ``σ``, likewise.
    """
    lam_b = lam.detach().float() if isinstance(lam, torch.Tensor) else torch.tensor(float(lam))
    from_a = u < lam_b
    z = torch.where(from_a.view(-1, *([1] * (x.ndim - 1))), a, x)
    m = gamma * z + sigma * noise
    ratio = gamma / sigma
    eps_x = noise + ratio * (z - x)
    eps_a = noise + ratio * (z - a)
    d_x = 0.5 * eps_x.double().pow(2).flatten(1).sum(1)
    d_a = 0.5 * eps_a.double().pow(2).flatten(1).sum(1)
    return Mixture(m=m, from_a=from_a, eps_x=eps_x, eps_a=eps_a, d_x=d_x, d_a=d_a)
