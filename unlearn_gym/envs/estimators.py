"""State and reward estimators of the unlearning env: exact state, initial state, probe batch.

Every function takes the model family's noise object where a DDPM takes its schedule (a
:class:`~unlearn_gym.diffusion.schedule.NoiseSchedule`, or the VAE's
:class:`~unlearn_gym.objectives.vae.VAENoise`) and calls that family's objectives
(:func:`~unlearn_gym.objectives.family.objectives_for`).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from unlearn_gym.cache import cached, tensor_digest
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.envs.encoding import STATE_KEYS
from unlearn_gym.objectives import PairSampler, SISSBatch, VAENoise, gradient_stats, objectives_for

#: a family's noise object: the DDPM's schedule or the VAE's fixed level
Noise = NoiseSchedule | VAENoise

#: Seed of the generator that draws the fixed probe batch and the θ_0 state (a constant, so these
#: quantities are the same for every episode seed).
PROBE_SEED = 20240917


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def exact_state(
    model: nn.Module, schedule: Noise, sampler: PairSampler, generator: torch.Generator
) -> dict[str, float]:
    """Plain ``L_r``, ``L_f``, ``||∇L_r||``, ``||∇L_f||`` (keyed by :data:`STATE_KEYS`) on a fresh batch
    (x from X\\A, a from A, shared ε, t).

    One forward pass of ``2B`` and two backward passes; ``.grad`` is not touched.

    :param model: the DDPM (or VAE) at θ_{t+1}.
    :param schedule: its noise schedule (or noise level).
    :param sampler: the env's sampler (batch size ``B``).
    :param generator: the env's random source.
    """
    x, y = sampler.sample_retain(generator)
    a, y_a = sampler.sample_forget(generator)
    no_is = objectives_for(schedule).no_is
    terms = no_is(model, schedule, SISSBatch(x, y, a, y_a, 1.0, 1.0), generator=generator)
    nx, na, cos = gradient_stats(terms, _params(model))
    vals = torch.stack([terms.stats["L_x"], terms.stats["L_a"]]).tolist()
    return update_state(vals[0], vals[1], nx, na, cos)


def initial_state(
    model: nn.Module, schedule: Noise, sampler: PairSampler, state: str, s: float = 0.0
) -> dict[str, float]:
    """The state quantities (:data:`STATE_KEYS`) at θ_0 on a fixed batch (computed once; resets reuse it).

    :param model: the DDPM (or VAE) at θ_0.
    :param schedule: its noise schedule (or noise level).
    :param sampler: the env's sampler.
    :param state: ``"update"`` (importance-weighted terms at λ = 0.5) or ``"exact"``.
    :param s: forget scale of the loss value.
    """
    gen = torch.Generator().manual_seed(PROBE_SEED + 1)
    if state == "exact":
        return exact_state(model, schedule, sampler, gen)
    terms = objectives_for(schedule).siss(model, schedule, sampler.sample(gen), 0.5, s=s, generator=gen)
    nx, na, cos = gradient_stats(terms, _params(model))
    r, f = torch.stack([terms.retain.detach(), terms.forget.detach()]).tolist()
    return update_state(r / terms.retain_norm, f / terms.forget_norm, nx / terms.retain_norm,
                        na / terms.forget_norm, cos)


def update_state(
    l_r: float, l_f: float, grad_norm_r: float, grad_norm_f: float, grad_cosine: float = 0.0
) -> dict[str, float]:
    """The state quantities (:data:`STATE_KEYS`) of ``state="update"``: the terms of an update.

    :param l_r: retain-loss estimate.
    :param l_f: forget-loss estimate.
    :param grad_norm_r: retain gradient norm.
    :param grad_norm_f: forget gradient norm.
    :param grad_cosine: cosine between the retain and forget gradients.
    """
    return dict(zip(STATE_KEYS, (float(l_r), float(l_f), float(grad_norm_r), float(grad_norm_f),
                                 float(grad_cosine))))


class Probe:
    """A fixed probe batch with fixed noise, timesteps (DDPM) or latent draws (VAE) and mixture
    uniforms (common random numbers).

    :param sampler: where the probe pairs come from (drawn once, with a constant seed).
    :param schedule: the noise schedule (or the VAE's noise level).
    :param size: number of probe pairs.
    :param resolution: image side.
    """

    def __init__(self, sampler: PairSampler, schedule: Noise, size: int, resolution: int):
        gen = torch.Generator().manual_seed(PROBE_SEED)
        self.schedule = schedule
        self.objectives = objectives_for(schedule)
        self.batch = sampler.sample(gen, size)
        crn = self.objectives.draw_crn(schedule, (size, 1, resolution, resolution), gen)
        self.crn = {k: v.to(sampler.device) for k, v in crn.items()}  # moved once, not every probe

    @torch.no_grad()
    def terms(self, model: nn.Module, lam: float, s: float = 0.0):
        """The objective's terms on the probe batch (no graph).

        :param model: the DDPM (or VAE).
        :param lam: λ.
        :param s: forget scale of the loss value.
        """
        return self.objectives.siss(model, self.schedule, self.batch, lam, s=s, **self.crn)

    def loss(self, model: nn.Module, lam: float, s: float = 0.0) -> float:
        """``L_SISS(θ; λ)`` on the probe batch.

        :param model: the DDPM (or VAE).
        :param lam: λ.
        :param s: forget scale of the loss value.
        """
        return float(self.terms(model, lam, s).loss)



def _noise_key(schedule: Noise) -> str:
    """A stable description of a DDPM schedule (its β's digest) or the VAE's noise level."""
    if isinstance(schedule, NoiseSchedule):
        return "ddpm-" + hashlib.sha256(schedule.betas.numpy().tobytes()).hexdigest()[:16]
    return repr(schedule)  # VAENoise: a frozen dataclass, its repr is its values


@torch.no_grad()
def reference_retain_loss(
    model: nn.Module, schedule: Noise, sampler: PairSampler, n: int = 1024
) -> float:
    """Plain loss of ``n`` fixed retain samples with fixed randomness (divergence reference): the
    denoising loss (fixed ε and t) of a DDPM, the VAE loss (fixed ε and ξ) of a VAE.

    :param model: the DDPM or VAE (at θ_0).
    :param schedule: its noise schedule (or noise level).
    :param sampler: the env's sampler.
    :param n: number of samples.
    """
    def compute() -> float:
        gen = torch.Generator().manual_seed(PROBE_SEED + 2)
        x, y = sampler.sample_retain(gen, n)
        return float(objectives_for(schedule).plain_loss(model, schedule, x, y, generator=gen))

    # deterministic, so measured once per machine (unlearn_gym.cache); the key holds the weights,
    # the retain data and the noise family
    data = hashlib.sha256(sampler.retain_images.detach().cpu().contiguous().numpy().tobytes())
    data.update(sampler.retain_labels.detach().cpu().contiguous().numpy().tobytes())
    key = {"model": tensor_digest(model), "data": data.hexdigest(), "n": n, "noise": _noise_key(schedule),
           "family": type(model).__name__, "device": str(sampler.retain_images.device.type)}
    return float(cached("reference-retain-loss", key, compute))
