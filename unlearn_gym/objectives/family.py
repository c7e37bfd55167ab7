"""The objective functions of each model family, chosen by the family's noise object.

A DDPM carries a :class:`~unlearn_gym.diffusion.schedule.NoiseSchedule` (a noise level per timestep),
the VAE a :class:`~unlearn_gym.objectives.vae.VAENoise` (one fixed level). Code that works for both
(the environment's estimators, adaptive-VI λ, the SISS methods) keeps that object where it kept the
schedule and calls ``objectives_for(noise).siss(model, noise, batch, lam, ...)``: every function
has the same positional contract ``(model, noise, ...)`` and returns the same
:class:`~unlearn_gym.objectives.core.Terms`. :func:`naive_deletion_terms` works for every family
through that choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives.core import Terms, pixels
from unlearn_gym.objectives.siss import denoising_loss, siss_no_is_terms, siss_terms
from unlearn_gym.objectives.vae import VAENoise, vae_loss, vae_siss_no_is_terms, vae_siss_terms

#: the model families and their noise objects
MODEL_FAMILIES = ("ddpm", "cvae")


def _ddpm_crn(noise: NoiseSchedule, shape: tuple[int, ...], generator: torch.Generator) -> dict[str, torch.Tensor]:
    n = shape[0]
    out = {"noise": torch.randn(shape, generator=generator), "t": noise.sample_timesteps(n, generator),
           "u": torch.rand(n, generator=generator)}
    out["other_noise"] = torch.randn(shape, generator=generator)
    out["other_t"] = noise.sample_timesteps(n, generator)
    return out


def _vae_crn(noise: VAENoise, shape: tuple[int, ...], generator: torch.Generator) -> dict[str, torch.Tensor]:
    n = shape[0]
    return {"noise": torch.randn(shape, generator=generator), "u": torch.rand(n, generator=generator),
            "xi": torch.randn(shape, generator=generator), "other_noise": torch.randn(shape, generator=generator),
            "other_xi": torch.randn(shape, generator=generator)}


@dataclass(frozen=True)
class Objectives:
    """The SISS objective functions of one model family.

    :param name: ``"ddpm"`` or ``"cvae"``.
    :param siss: ``siss(model, noise, batch, lam, *, s, generator, **crn) -> Terms``.
    :param no_is: ``no_is(model, noise, batch, *, s, generator) -> Terms`` (plain losses, no weights).
    :param plain_loss: ``plain_loss(model, noise, images, labels, *, generator) -> Tensor``.
    :param draw_crn: ``draw_crn(noise, image_shape, generator)``: every random input of ``siss`` for
        a batch of that shape, as keyword arguments (common random numbers of a fixed probe batch).
    """

    name: str
    siss: Callable[..., Terms]
    no_is: Callable[..., Terms]
    plain_loss: Callable[..., torch.Tensor]
    draw_crn: Callable[[Any, tuple[int, ...], torch.Generator], dict[str, torch.Tensor]]


DDPM_OBJECTIVES = Objectives("ddpm", siss_terms, siss_no_is_terms, denoising_loss, _ddpm_crn)
CVAE_OBJECTIVES = Objectives("cvae", vae_siss_terms, vae_siss_no_is_terms, vae_loss, _vae_crn)


def objectives_for(noise: NoiseSchedule | VAENoise) -> Objectives:
    """The objective functions that go with a family's noise object.

    :param noise: a :class:`NoiseSchedule` (DDPM) or a :class:`VAENoise` (VAE).
    :raises TypeError: anything else.
    """
    if isinstance(noise, VAENoise):
        return CVAE_OBJECTIVES
    if isinstance(noise, NoiseSchedule):
        return DDPM_OBJECTIVES
    raise TypeError(f"expected a NoiseSchedule (DDPM) or a VAENoise (VAE), got {type(noise).__name__}")


def family_noise(family: str) -> NoiseSchedule | VAENoise:
    """The default noise object of a model family.

    :param family: ``"ddpm"`` or ``"cvae"``.
    :raises ValueError: an unknown family.
    """
    if family == "ddpm":
        return NoiseSchedule()
    if family == "cvae":
        return VAENoise()
    raise ValueError(f"model must be one of {MODEL_FAMILIES}, got {family!r}")


def naive_deletion_terms(
    model: nn.Module, schedule: NoiseSchedule | VAENoise, x: torch.Tensor, y: torch.Tensor,
    *, generator: torch.Generator | None = None,
) -> Terms:
    """Naive deletion: fine-tune on X\\A only (no forget term), for either model family.

    :param model: ε-prediction network (or a VAE).
    :param schedule: its noise schedule (a VAE: its :class:`~unlearn_gym.objectives.vae.VAENoise`).
    :param x: retain images.
    :param y: their labels.
    :param generator: random source.
    """
    loss = objectives_for(schedule).plain_loss(model, schedule, x, y, generator=generator)
    return Terms(retain=loss, forget=None, loss=loss, stats={"L_x": loss.detach()}, loss_elements=pixels(x))
