"""Pretraining the class-conditional VAE with the package's shared loop (:func:`~unlearn_gym.diffusion.train.fit`).

Same conventions as the DDPM: the contaminated mix of the preset, uniform mini-batches from one
seeded generator, trousers flipped horizontally with probability 0.5 (digits never), AdamW with
warm-up and cosine decay, gradient clipping 1.0, EMA weights, progress bar, tensorboard, atomic
checkpoints with a JSON sidecar, bit-identical resume. The loss is
:func:`~unlearn_gym.objectives.vae.vae_loss` at the SISS noise level (a denoising VAE: the encoder
sees ``γ x + σ ε``, the decoder reconstructs ``x``), so the retain loss of SISS at θ_0 is the
pretraining loss, as it is for the DDPM.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from unlearn_gym.data import ContaminatedMNIST, build_contaminated_mnist
from unlearn_gym.device import DeviceLike
from unlearn_gym.diffusion.train import fit
from unlearn_gym.objectives.vae import VAENoise, vae_loss
from unlearn_gym.presets import get_preset
from unlearn_gym.rng import seeded_global_rng
from unlearn_gym.vae.model import build_cvae, cvae_config


def pretrain_cvae(
    preset: str = "micro",
    out: str | os.PathLike = "cvae.pt",
    *,
    steps: int | None = None,
    seed: int = 0,
    data: ContaminatedMNIST | None = None,
    resume: str | os.PathLike | None = None,
    until: int | None = None,
    save_every: int = 1000,
    log_dir: str | os.PathLike | None = None,
    flip_forget: bool = True,
    progress: bool = True,
    command: str | None = None,
    noise: VAENoise | None = None,
    device: DeviceLike = None,
    retain_only: bool = False,
    task: str = "trousers",
) -> dict[str, Any]:
    """Train the preset's VAE on the contaminated mix; save a resumable ``cvae`` checkpoint.

    :param preset: ``micro``, ``tiny`` (or ``mnist28``).
    :param out: checkpoint path (written atomically, with a ``.json`` sidecar).
    :param steps: total steps (default: the preset's VAE ``pretrain_steps``).
    :param seed: seed of initialisation, batches, noise and the reparameterisation.
    :param data: dataset (default: :func:`build_contaminated_mnist` of the preset, ratio 0.1).
    :param resume: checkpoint of the same run to continue from.
    :param until: stop (and save) after this many total steps.
    :param save_every: steps between intermediate checkpoints.
    :param log_dir: tensorboard directory (``None``: no logging).
    :param flip_forget: flip the trousers horizontally with probability 0.5.
    :param progress: show a progress bar.
    :param command: the command line recorded in the sidecar (default: ``sys.argv``).
    :param noise: noise level σ of the encoder input and KL weight β (default σ 0.3, β 0.5).
    :param device: where to train (``"cpu"``, ``"cuda"``, ``"auto"``; default the CPU).
    :param retain_only: drop the forget images from the training mix: the retrained reference.
    :param task: whose forget set ``retain_only`` drops: ``"trousers"`` or ``"erase-<digit>"``.
    :returns: the final training state (``model``, ``ema``, ``step``, ``loss``, ``elapsed_s``).
    """
    p = get_preset(preset)
    c = cvae_config(p)
    level = noise if noise is not None else VAENoise()
    data = data if data is not None else build_contaminated_mnist(p.name)
    data = data.retain_only(task) if retain_only else data
    if data.resolution != p.resolution:
        raise ValueError(f"data resolution {data.resolution} != preset {p.name} ({p.resolution})")
    total = int(steps if steps is not None else c.pretrain_steps)
    with seeded_global_rng(seed):  # initialisation only; batches use the loop's generator
        model = build_cvae(p)

    def loss_fn(m: nn.Module, x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return vae_loss(m, level, x0, y, generator=gen)

    extra = {"model": "cvae", "latent_dim": c.latent_dim, "hidden": c.hidden, "sigma": level.sigma,
             "beta": level.beta}
    return fit("cvae", p.name, model, loss_fn, out, total=total, batch=c.pretrain_batch, lr=c.pretrain_lr,
               ema_decay=c.ema_decay, seed=seed, data=data, resume=resume, until=until, save_every=save_every,
               log_dir=log_dir, flip_forget=flip_forget, progress=progress, command=command, extra_config=extra,
               device=device)
