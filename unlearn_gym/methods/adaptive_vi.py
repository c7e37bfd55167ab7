"""Adaptive-λ SISS by variational inference (the seed's §5.1, Algorithm 2; docs/method.md §2).

An inference network q_φ(z | c) = N(μ_φ(c), σ_φ(c)²) reads the context of the run,
c_t = log10 [L_r, L_f, ||g_r||, ||g_f||], draws z = μ + σ ξ (ξ ~ N(0, 1) from the run's generator)
and sets λ = λ_min + (λ_max - λ_min) sigmoid(z). Each step minimises

    L = L_SISS(θ, λ(φ)) + β_KL · KL(q_φ(z | c) || N(0, 1)),  KL = ½ (μ² + σ² - 1 - log σ²)

over θ and φ together: θ takes one step of the SISS update rule (``apply_update``, as every SISS
method), φ one Adam step on ∂L/∂φ. L_SISS (the paper's loss value, ``terms.loss``) reaches φ through
λ inside the importance weights w_x, w_a (the mixture draws m_t are held fixed): a public
implementation of the paper detached it, so φ learned only from the KL term and λ drifted to the
prior. ``phi_grad_norm_siss`` in the log is the norm of that part, per step.

The context of step t is the one the previous update measured (its L_r, L_f and gradient norms at
θ_{t-1}, the env's ``state="update"``); the first step's is measured at θ_0 on one batch with λ = 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from unlearn_gym.methods.registry import Method, register_method
from unlearn_gym.methods.setup import UnlearnSetup
from unlearn_gym.methods.static import check_grad_units, check_nonnegative, resolve_rule
from unlearn_gym.objectives import apply_update, gradient_norms, objectives_for
from unlearn_gym.rng import seeded_global_rng

CONTEXT = ("L_r", "L_f", "grad_norm_r", "grad_norm_f")


class LambdaPosterior(nn.Module):
    """q_φ(z | c): an MLP from the context to (μ, log σ).

    :param context_dim: size of the context vector (4).
    :param hidden: width of the two tanh hidden layers.
    """

    def __init__(self, context_dim: int = len(CONTEXT), hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(context_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2)
        )

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ)`` for a context vector.

        :param context: ``(context_dim,)`` log-scaled context.
        """
        mu, log_sigma = self.net(context).unbind(-1)
        return mu, log_sigma.clamp(-5.0, 2.0)


def encode_context(values: tuple[float, ...] | list[float]) -> torch.Tensor:
    """``log10`` of the context values, clipped to [-10, 10] (non-finite values map to the ends).

    :param values: ``(L_r, L_f, ||g_r||, ||g_f||)``.
    """
    out = []
    for v in values:
        v = float(v)
        out.append(10.0 if v == math.inf or math.isnan(v) else -10.0 if v <= 0 else math.log10(v))
    return torch.tensor(out, dtype=torch.float32).clamp(-10.0, 10.0)


@dataclass
class LambdaDraw:
    """One reparameterised draw of λ (every tensor differentiable in φ).

    :param lam: λ in [λ_min, λ_max] (0-d).
    :param z: the latent.
    :param mu: posterior mean.
    :param sigma: posterior standard deviation.
    :param kl: KL(q_φ(z | c) || N(0, 1)).
    """

    lam: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    kl: torch.Tensor


def draw_lambda(
    net: LambdaPosterior, context: torch.Tensor, generator: torch.Generator, lam_min: float, lam_max: float
) -> LambdaDraw:
    """Reparameterised λ = λ_min + (λ_max - λ_min) sigmoid(μ + σ ξ) and its KL to N(0, 1).

    :param net: the inference network q_φ.
    :param context: the encoded context (:func:`encode_context`).
    :param generator: source of ξ ~ N(0, 1).
    :param lam_min: λ at z = -∞.
    :param lam_max: λ at z = +∞.
    """
    mu, log_sigma = net(context)
    sigma = log_sigma.exp()
    z = mu + sigma * torch.randn((), generator=generator)
    lam = lam_min + (lam_max - lam_min) * torch.sigmoid(z)
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * log_sigma)
    return LambdaDraw(lam=lam, z=z, mu=mu, sigma=sigma, kl=kl)


def _norm(grads: tuple[torch.Tensor, ...]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@register_method
class AdaptiveVI(Method):
    """SISS whose λ is inferred per step by q_φ(z | c), trained jointly with the DDPM."""

    name = "adaptive-vi"
    summary = "adaptive λ by variational inference: MLP q_φ(z|c), λ = λ_min + Δ sigmoid(z), + β_KL KL"
    models = ("ddpm", "cvae")
    params: ClassVar[dict[str, Any]] = {
        "lam_min": 0.05, "lam_max": 0.95, "beta_kl": 0.01, "phi_lr": 1e-3, "hidden": 32,
        "rule": None, "scale": None, "s": 0.0, "grad_units": None,
    }

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        p = self.p
        self.lam_min, self.lam_max = float(p["lam_min"]), float(p["lam_max"])
        if not 0.0 < self.lam_min < self.lam_max < 1.0:
            raise ValueError(f"need 0 < lam_min < lam_max < 1, got {p['lam_min']}, {p['lam_max']}")
        self.beta_kl = check_nonnegative(p["beta_kl"], "beta_kl")
        if not check_nonnegative(p["phi_lr"], "phi_lr") > 0:
            raise ValueError("phi_lr must be > 0")
        if isinstance(p["hidden"], bool) or not isinstance(p["hidden"], int) or p["hidden"] < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {p['hidden']!r}")
        self.rule, self.scale = resolve_rule(setup, p["rule"], p["scale"])
        p.update(rule=self.rule, scale=self.scale)  # record the resolved values
        self.s = check_nonnegative(p["s"], "s")
        self.grad_units = check_grad_units(p["grad_units"])
        with seeded_global_rng(setup.seed):  # nn.Linear draws its init from the global RNG
            self.net = LambdaPosterior(hidden=p["hidden"])
        self.phi_optimizer = torch.optim.Adam(self.net.parameters(), lr=float(p["phi_lr"]))
        self.siss = objectives_for(setup.schedule).siss  # the DDPM's or the VAE's SISS terms
        self.context = self._initial_context()

    def _initial_context(self) -> torch.Tensor:
        su = self.setup
        terms = self.siss(su.model, su.schedule, su.sampler.sample(su.generator), 0.5, s=self.s,
                          generator=su.generator)
        nx, na = gradient_norms(terms, [q for q in su.model.parameters() if q.requires_grad])
        l_r = float(terms.retain.detach()) / terms.retain_norm
        l_f = float(terms.forget.detach()) / terms.forget_norm
        return encode_context((l_r, l_f, nx / terms.retain_norm, na / terms.forget_norm))

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        draw = draw_lambda(self.net, self.context, su.generator, self.lam_min, self.lam_max)
        terms = self.siss(su.model, su.schedule, su.sampler.sample(su.generator), draw.lam, s=self.s,
                          generator=su.generator)
        phi = list(self.net.parameters())
        # ∂L/∂φ = ∂L_SISS/∂λ ∂λ/∂φ + β_KL ∂KL/∂φ; only the λ path of the graph is traversed
        g_siss = torch.autograd.grad(terms.loss, phi, retain_graph=True)
        g_kl = torch.autograd.grad(self.beta_kl * draw.kl, phi) if self.beta_kl > 0 else tuple(
            torch.zeros_like(q) for q in phi)
        for q, a, b in zip(phi, g_siss, g_kl):
            q.grad = a + b
        self.phi_optimizer.step()
        upd = apply_update(su.model, su.optimizer, terms, self.rule, self.scale, max_grad_norm=su.max_grad_norm,
                           grad_units=self.grad_units)
        self.context = encode_context((upd.L_r, upd.L_f, upd.grad_norm_r, upd.grad_norm_f))
        return {
            "lambda": float(draw.lam.detach()), "z": float(draw.z.detach()), "mu": float(draw.mu.detach()),
            "sigma": float(draw.sigma.detach()), "kl": float(draw.kl.detach()),
            "phi_grad_norm_siss": _norm(g_siss), "phi_grad_norm_kl": _norm(g_kl), **upd.as_dict(),
        }

    def extra_state(self) -> dict[str, Any]:
        """The trained inference network q_φ (saved beside the unlearned model)."""
        return {"lambda_posterior": self.net.state_dict()}
