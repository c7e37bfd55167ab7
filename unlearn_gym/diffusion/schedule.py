"""The DDPM noise schedule (linear β, ε-prediction)."""

from __future__ import annotations

import torch

from unlearn_gym.device import randint


class NoiseSchedule:
    """Linear-β DDPM schedule with ``γ_t = sqrt(ᾱ_t)`` and ``σ_t = sqrt(1 - ᾱ_t)``.

    Index ``t`` runs over ``0..T-1`` (``t = 0`` is the least noisy step).

    :param num_steps: T, the number of diffusion steps.
    :param beta_start: β of the first step.
    :param beta_end: β of the last step.
    """

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if num_steps < 1 or not 0 < beta_start <= beta_end < 1:
            raise ValueError("need num_steps >= 1 and 0 < beta_start <= beta_end < 1")
        self.num_steps = num_steps
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.betas = betas.float()
        alpha_bar = torch.cumprod(1.0 - betas, dim=0)
        self.alpha_bar = alpha_bar.float()
        self.gamma = alpha_bar.sqrt().float()
        self.sigma = (1.0 - alpha_bar).sqrt().float()
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _coef_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device.type == "cpu":
            return self.gamma, self.sigma
        if device not in self._on:  # one copy per accelerator, made on first use
            self._on[device] = (self.gamma.to(device), self.sigma.to(device))
        return self._on[device]

    def coefficients(self, t: torch.Tensor, ndim: int = 4,
                     device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ_t, σ_t) gathered for a batch of timesteps, shaped to broadcast over images, on
        ``device`` (default: ``t``'s)."""
        shape = (-1,) + (1,) * (ndim - 1)
        if device is not None:
            t = t.to(device)
        gamma, sigma = self._coef_on(t.device)
        return gamma[t].view(shape), sigma[t].view(shape)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t = γ_t x_0 + σ_t ε`` from the forward process."""
        g, s = self.coefficients(t, x0.ndim, x0.device)
        return g * x0 + s * noise

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None,
                         device: torch.device | None = None) -> torch.Tensor:
        """``n`` timesteps uniform on ``0..T-1``, drawn on the CPU from ``generator``, then moved to
        ``device`` (:mod:`unlearn_gym.device`)."""
        return randint(0, self.num_steps, (n,), generator, device)
