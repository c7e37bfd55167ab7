"""The DDPM noise schedule (linear β, ε-prediction)."""

from __future__ import annotations

import torch


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

    def coefficients(self, t: torch.Tensor, ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ_t, σ_t) gathered for a batch of timesteps, shaped to broadcast over images."""
        shape = (-1,) + (1,) * (ndim - 1)
        return self.gamma[t].view(shape), self.sigma[t].view(shape)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t = γ_t x_0 + σ_t ε`` from the forward process."""
        g, s = self.coefficients(t, x0.ndim)
        return g * x0 + s * noise

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` timesteps uniform on ``0..T-1``."""
        return torch.randint(0, self.num_steps, (n,), generator=generator)
