"""What every unlearning run starts from: data split, pair sampler, pretrained model, optimizer, RNG.

:func:`build_setup` assembles them from a preset and a task with the same library calls the
environment uses (``build_contaminated_mnist``, ``task_split``, ``PairSampler``,
``load_pretrained``), so a method and the env see identical data and starting weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearn_gym.data import build_contaminated_mnist, task_split
from unlearn_gym.device import DeviceLike, resolve_device
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives import MODEL_FAMILIES, PairSampler, VAENoise, family_noise
from unlearn_gym.presets import Preset, get_preset
from unlearn_gym.pretrained import load_pretrained
from unlearn_gym.rng import seeded_global_rng

#: parameters every method accepts (``None``: the preset's value), with their defaults
SETUP_PARAMS: dict[str, Any] = {
    "lr": None,
    "batch_size": None,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "pairing": "drawn",
    "x_from": "retain",
    "checkpoint": None,
    "data_ratio": 0.1,
    "data_seed": 0,
    "max_train_digits": None,
    "model": "ddpm",
    "device": None,
}


@dataclass
class UnlearnSetup:
    """The mutable state a method works on.

    :param preset: the resolved preset.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param model: the DDPM (or VAE) being unlearned (starts as the pretrained EMA weights, train mode).
    :param schedule: its noise schedule (the VAE's: its fixed noise level, a
        :class:`~unlearn_gym.objectives.vae.VAENoise`).
    :param sampler: retain / forget mini-batches of the task.
    :param optimizer: AdamW over ``model``'s parameters.
    :param generator: the run's only random source (batches, noise, timesteps, mixture draws).
    :param seed: the seed of ``generator`` (methods seed their own networks' init from it).
    :param max_grad_norm: total-norm clip of every update (``None``: none).
    :param config: the resolved setup parameters (for logs and sidecars).
    """

    preset: Preset
    task: str
    model: nn.Module
    schedule: NoiseSchedule | VAENoise
    sampler: PairSampler
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    seed: int
    max_grad_norm: float | None
    config: dict[str, Any]


def build_setup(
    preset: str | Preset,
    task: str,
    *,
    seed: int = 0,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    pairing: str = "drawn",
    x_from: str = "retain",
    checkpoint: str | os.PathLike | None = None,
    data_ratio: float = 0.1,
    data_seed: int = 0,
    max_train_digits: int | None = None,
    model: str = "ddpm",
    device: DeviceLike = None,
) -> UnlearnSetup:
    """Data, pretrained model, optimizer and generator of one unlearning run.

    :param preset: preset name (``micro``, ``tiny``, ...).
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param seed: seed of the run's ``torch.Generator`` (no global seeding).
    :param lr: AdamW learning rate (default: the preset's ``unlearn_lr``).
    :param batch_size: pairs per step (default: the preset's ``unlearn_batch``).
    :param weight_decay: AdamW weight decay.
    :param max_grad_norm: total-norm clip of every update (``None``: none).
    :param pairing: ``"drawn"`` or ``"same-label"`` (see :class:`~unlearn_gym.objectives.PairSampler`).
    :param x_from: ``"retain"`` or ``"full"``.
    :param checkpoint: DDPM weights to start from instead of the shipped pretrained ones.
    :param data_ratio: trousers per real "1" of the dataset build.
    :param data_seed: seed of the dataset build.
    :param max_train_digits: optional cap on training digits of the dataset build.
    :param model: model family, ``"ddpm"`` or ``"cvae"`` (the class-conditional VAE; its ``lr``
        defaults to the VAE's own, :data:`~unlearn_gym.vae.CVAE_CONFIGS`).
    :param device: where the model and the data live (``"cpu"``, ``"cuda"``, ``"auto"``; default the
        CPU); the generator stays a CPU generator (:mod:`unlearn_gym.device`).
    """
    p = get_preset(preset)
    if model not in MODEL_FAMILIES:
        raise ValueError(f"model must be one of {MODEL_FAMILIES}, got {model!r}")
    if model == "cvae" and lr is None:
        from unlearn_gym.vae import cvae_config

        lr = cvae_config(p).unlearn_lr
    lr = float(p.unlearn_lr if lr is None else lr)
    batch_size = int(p.unlearn_batch if batch_size is None else batch_size)
    if not (lr > 0 and weight_decay >= 0):
        raise ValueError(f"need lr > 0 and weight_decay >= 0, got lr={lr}, weight_decay={weight_decay}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
    dev = resolve_device(device)
    data = build_contaminated_mnist(p.name, ratio=data_ratio, seed=data_seed, max_train_digits=max_train_digits)
    sampler = PairSampler(*task_split(data, task), batch_size=batch_size, pairing=pairing, x_from=x_from,
                          device=dev)
    with seeded_global_rng(seed):  # the UNet's throw-away init draws from the global RNG: leave it alone
        net = load_pretrained(p.name, checkpoint, ratio=data_ratio, model=model, device=dev).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    config = {
        "lr": lr, "batch_size": batch_size, "weight_decay": float(weight_decay),
        "max_grad_norm": None if max_grad_norm is None else float(max_grad_norm), "pairing": pairing,
        "x_from": x_from, "checkpoint": None if checkpoint is None else str(checkpoint),
        "data_ratio": float(data_ratio), "data_seed": int(data_seed), "max_train_digits": max_train_digits,
        "n_retain": len(sampler.retain_images), "n_forget": sampler.k, "model": model, "device": str(dev),
    }
    return UnlearnSetup(
        preset=p, task=task, model=net, schedule=family_noise(model), sampler=sampler, optimizer=optimizer,
        generator=torch.Generator().manual_seed(int(seed)), seed=int(seed),
        max_grad_norm=config["max_grad_norm"], config=config,
    )
