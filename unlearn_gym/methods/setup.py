"""What every unlearning run starts from: data split, pair sampler, pretrained model, optimizer, RNG.

:func:`build_setup` assembles them from the run's :class:`~unlearn_gym.settings.RunSettings` (the
same resolver and the same defaults as the env) with the same library calls the environment uses
(``build_contaminated_mnist``, ``task_split``, ``PairSampler``, ``load_pretrained``), so a method
and the env see identical data, hyperparameters and starting weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearn_gym.data import build_contaminated_mnist, task_split
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives import PairSampler, VAENoise, family_noise
from unlearn_gym.presets import Preset
from unlearn_gym.pretrained import load_pretrained
from unlearn_gym.settings import RunSettings, resolve_run_settings

#: parameters every method accepts (``None``: the default of :class:`~unlearn_gym.settings.RunSettings`)
SETUP_PARAMS: dict[str, Any] = {
    "lr": None,
    "batch_size": None,
    "weight_decay": None,
    "max_grad_norm": 1.0,
    "pairing": None,
    "x_from": None,
    "checkpoint": None,
    "data_ratio": None,
    "data_seed": None,
    "max_train_digits": None,
    "model": "ddpm",
    "device": None,
}


@dataclass
class UnlearnSetup:
    """The mutable state a method works on.

    :param settings: the run's resolved settings (the same object the env resolves).
    :param model: the DDPM (or VAE) being unlearned (starts as the pretrained EMA weights, train mode).
    :param schedule: its noise schedule (the VAE's: its fixed noise level, a
        :class:`~unlearn_gym.objectives.vae.VAENoise`).
    :param sampler: retain / forget mini-batches of the task.
    :param optimizer: AdamW over ``model``'s parameters.
    :param generator: the run's only random source (batches, noise, timesteps, mixture draws).
    :param seed: the seed of ``generator`` (methods seed their own networks' init from it).
    :param run_steps: the run's length when known (:func:`~unlearn_gym.methods.run` sets it), for
        methods whose settings scale with it (e.g. ``sfd``'s EMA half-life).
    """

    settings: RunSettings
    model: nn.Module
    schedule: NoiseSchedule | VAENoise
    sampler: PairSampler
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    seed: int
    run_steps: int | None = None

    @property
    def preset(self) -> Preset:
        """The resolved preset."""
        return self.settings.preset

    @property
    def task(self) -> str:
        """``"trousers"`` or ``"erase-<digit>"``."""
        return self.settings.task

    @property
    def max_grad_norm(self) -> float | None:
        """Total-norm clip of every update (``None``: none)."""
        return self.settings.max_grad_norm

    @property
    def config(self) -> dict[str, Any]:
        """The resolved setup parameters (for logs and sidecars)."""
        d = self.settings.to_dict()
        out = {k: d[k] for k in ("lr", "batch_size", "weight_decay", "max_grad_norm", "pairing", "x_from",
                                 "checkpoint", "data_ratio", "data_seed", "max_train_digits")}
        out.update(n_retain=len(self.sampler.retain_images), n_forget=self.sampler.k, model=d["model"],
                   device=d["device"])
        return out


def build_setup(
    preset: str | Preset | RunSettings,
    task: str = "trousers",
    *,
    seed: int = 0,
    **overrides: Any,
) -> UnlearnSetup:
    """Data, pretrained model, optimizer and generator of one unlearning run.

    :param preset: preset name or object, or already resolved :class:`~unlearn_gym.settings.RunSettings`
        (then ``task`` and ``overrides`` must not be given).
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param seed: seed of the run's ``torch.Generator`` (no global seeding).
    :param overrides: :data:`SETUP_PARAMS` (``lr``, ``batch_size``, ``weight_decay``, ``max_grad_norm``,
        ``pairing``, ``x_from``, ``checkpoint``, ``data_ratio``, ``data_seed``, ``max_train_digits``,
        ``model``, ``device``): fields of :class:`~unlearn_gym.settings.RunSettings`, which documents
        each one's default. ``max_grad_norm=None`` means no clipping here (the default is 1.0).
    """
    if isinstance(preset, RunSettings):
        if overrides:
            raise ValueError(f"pass either resolved settings or overrides, not both (got {sorted(overrides)})")
        settings = preset
    else:
        unknown = sorted(set(overrides) - set(SETUP_PARAMS))
        if unknown:
            raise ValueError(f"unknown setup parameter(s) {unknown}; known: {sorted(SETUP_PARAMS)}")
        clip = overrides.pop("max_grad_norm", 1.0)
        settings = resolve_run_settings(preset, task, overrides.pop("model", None) or "ddpm", **overrides)
        settings = dataclasses.replace(settings, max_grad_norm=None if clip is None else float(clip))
        if clip is not None and not clip > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {clip}")
    dev = torch.device(settings.device)
    data = build_contaminated_mnist(settings.preset.name, ratio=settings.data_ratio, seed=settings.data_seed,
                                    max_train_digits=settings.max_train_digits)
    sampler = PairSampler(*task_split(data, settings.task), batch_size=settings.batch_size,
                          pairing=settings.pairing, x_from=settings.x_from, device=dev)
    net = load_pretrained(settings.preset.name, settings.checkpoint, ratio=settings.data_ratio,
                          model=settings.model, device=dev).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return UnlearnSetup(
        settings=settings, model=net, schedule=family_noise(settings.model), sampler=sampler,
        optimizer=optimizer, generator=torch.Generator().manual_seed(int(seed)), seed=int(seed),
    )
