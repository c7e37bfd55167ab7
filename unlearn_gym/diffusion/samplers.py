"""Deterministic (given a ``torch.Generator``) DDIM and DDPM ancestral samplers."""

from __future__ import annotations

import torch
from torch import nn

from unlearn_gym.device import model_device, randn
from unlearn_gym.diffusion.schedule import NoiseSchedule


def _timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    if not 1 <= steps <= schedule.num_steps:
        raise ValueError(f"steps must be in [1, {schedule.num_steps}], got {steps}")
    ts = torch.linspace(schedule.num_steps - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Draw one image per label on a strided schedule of ``steps`` timesteps.

    ``eta = 0`` is DDIM (deterministic given the initial noise); ``eta = 1`` is DDPM ancestral
    sampling (exactly DDPM when ``steps = T``). The predicted x_0 is clipped to [-1, 1]. The chain
    runs on the model's device; random numbers come from the CPU ``generator`` and the images are
    returned on the CPU (:mod:`unlearn_gym.device`).

    :param model: ε-prediction network ``model(x_t, t, y)``.
    :param schedule: its noise schedule.
    :param labels: int64 class labels, one per image.
    :param steps: number of denoising steps.
    :param eta: DDIM stochasticity (0 = DDIM, 1 = DDPM).
    :param generator: source of every random number (initial noise and, for ``eta > 0``, step noise).
    :param noise: optional initial noise ``(N, C, H, W)`` (common random numbers across models).
    :param batch_size: images per forward pass.
    :returns: float32 CPU images in [-1, 1].
    """
    was_training = model.training
    model.eval()
    res = getattr(model, "resolution", None)
    if noise is None:
        if res is None:
            raise ValueError("pass `noise` for a model without a `resolution` attribute")
        noise = randn((len(labels), 1, res, res), generator)
    dev = model_device(model)
    ts = _timesteps(schedule, steps)
    ab = schedule.alpha_bar
    out = []
    for start in range(0, len(labels), batch_size):
        x = noise[start : start + batch_size].to(dev, copy=True)
        y = labels[start : start + batch_size].to(dev)
        for i, t in enumerate(ts):
            a_t = ab[t]
            a_prev = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            tt = torch.full((len(y),), t, dtype=torch.long, device=dev)
            eps = model(x, tt, y)
            x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            var = eta**2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
            x = a_prev.sqrt() * x0 + (1 - a_prev - var).clamp_min(0).sqrt() * eps
            if eta > 0 and i + 1 < len(ts):
                x = x + var.sqrt() * randn(x.shape, generator, dev)
        out.append(x.clamp(-1, 1).cpu())
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def ddim_sample_many(models: list[nn.Module], schedule: NoiseSchedule, labels: torch.Tensor, noise: torch.Tensor,
                     *, steps: int = 50) -> torch.Tensor:
    """DDIM (η = 0) images of several models of one architecture from the same noise, as one computation.

    The models' parameters are stacked and every denoising step calls them through one
    ``torch.func.vmap`` of :func:`torch.func.functional_call`, so K models cost one batched forward
    pass per step instead of K. The arithmetic is :func:`sample`'s with ``eta=0``, reordered by the
    batched kernels: images agree with K separate calls within float tolerance.

    :param models: the ε-prediction networks (same architecture and buffers' shapes).
    :param schedule: their noise schedule.
    :param labels: int64 class labels, one per image.
    :param noise: initial noise ``(N, C, H, W)``, the same for every model (common random numbers).
    :param steps: denoising steps.
    :returns: float32 CPU images ``(K, N, C, H, W)`` in [-1, 1].
    """
    from torch.func import functional_call, stack_module_state, vmap

    base = models[0]
    was = [m.training for m in models]
    for m in models:
        m.eval()
    params, buffers = stack_module_state(models)
    dev = model_device(base)
    ts = _timesteps(schedule, steps)
    ab = schedule.alpha_bar
    y = labels.to(dev)
    x = noise.to(dev).unsqueeze(0).expand(len(models), *noise.shape).clone()

    def eps_of(p, b, xk, tt):
        return functional_call(base, {**p, **b}, (xk, tt, y))

    for i, t in enumerate(ts):
        a_t = ab[t]
        a_prev = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        tt = torch.full((len(y),), t, dtype=torch.long, device=dev)
        eps = vmap(eps_of, in_dims=(0, 0, 0, None))(params, buffers, x, tt)
        x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).clamp_min(0).sqrt() * eps
    for m, w in zip(models, was, strict=True):
        m.train(w)
    return x.clamp(-1, 1).cpu()


def ddim_sample(model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, **kw) -> torch.Tensor:
    """DDIM (η = 0) sampling; see :func:`sample`."""
    return sample(model, schedule, labels, eta=0.0, **kw)


def ddpm_sample(model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, **kw) -> torch.Tensor:
    """DDPM ancestral sampling (η = 1); ``steps=schedule.num_steps`` is the exact chain."""
    return sample(model, schedule, labels, eta=1.0, **kw)
