"""Pretraining on the contaminated data (resumable, bit-exact): the shared loop and the DDPM's loss."""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from unlearn_gym.checkpoints import load_checkpoint, save_checkpoint
from unlearn_gym.data import ContaminatedMNIST, build_contaminated_mnist
from unlearn_gym.device import DeviceLike, randn, resolve_device
from unlearn_gym.diffusion.ema import ema_weights, make_ema
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.diffusion.unet import build_unet
from unlearn_gym.presets import get_preset
from unlearn_gym.rng import seeded_global_rng


def lr_factor(step: int, total: int, warmup: int = 200, floor: float = 0.1) -> float:
    """Linear warm-up then cosine decay to ``floor`` of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _summary_writer(log_dir: str | os.PathLike | None):
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is in the [sb3] extra
        print("tensorboard not installed; loss is not logged (pip install tensorboard)", file=sys.stderr)
        return None
    return SummaryWriter(str(log_dir))


#: ``loss_fn(model, x0, y, generator) -> scalar``: one mini-batch's training loss
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def ddpm_pretrain_loss(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                       schedule: NoiseSchedule | None = None) -> torch.Tensor:
    """The DDPM's pretraining loss ``mean ||ε_θ(x_t, t, y) - ε||²`` (draws t, then ε, from ``generator``).

    :param model: ε-prediction UNet.
    :param x0: clean images.
    :param y: labels.
    :param generator: source of the timesteps and the noise.
    :param schedule: noise schedule (default: the standard linear one).
    """
    schedule = schedule if schedule is not None else NoiseSchedule()
    t = schedule.sample_timesteps(len(x0), generator, x0.device)
    noise = randn(x0.shape, generator, x0.device)
    return nn.functional.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), noise)


@dataclass
class _TrainState:
    """What a checkpoint of :func:`fit` restores: the model, its EMA, the optimizer, schedule and generator."""

    model: nn.Module
    ema: AveragedModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    gen: torch.Generator
    step: int = 0
    elapsed: float = 0.0

    def resume(self, path: str | os.PathLike, kind: str, preset: str, total: int, seed: int) -> None:
        """Load a resumable checkpoint of the same run (same ``total`` steps and ``seed``) into this state.

        :raises ValueError: the checkpoint holds EMA weights only, or another run's steps or seed.
        """
        ck = load_checkpoint(path, kind, preset)
        if "optimizer" not in ck:
            raise ValueError(f"{path} holds EMA weights only; it cannot be resumed")
        if ck["config"]["steps"] != total or ck["config"]["seed"] != seed:
            raise ValueError(
                f"{path} was made with steps={ck['config']['steps']}, seed={ck['config']['seed']}; "
                "resume with the same --steps and --seed"
            )
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["lr_scheduler"])
        self.gen.set_state(ck["generator"])
        self.step, self.elapsed = int(ck["step"]), float(ck.get("elapsed_s", 0.0))

    def payload(self, config: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint's tensors and counters (everything :meth:`resume` reads)."""
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(),
                "lr_scheduler": self.sched.state_dict(), "generator": self.gen.get_state(), "step": self.step,
                "config": config, "elapsed_s": self.elapsed}


def _train_step(
    state: _TrainState,
    loss_fn: LossFn,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    batch: int,
    dev: torch.device,
    flip_forget: bool,
) -> float:
    """One optimisation step on a uniform mini-batch; returns its loss.

    The generator draws the batch indices, then the flip coins (drawn whether or not
    ``flip_forget`` is set, so the stream of draws does not depend on it), then ``loss_fn``'s own.

    :param state: the training state (updated in place, ``step`` included).
    :param loss_fn: the mini-batch loss.
    :param data: the training images and labels (on ``dev``) and the forget mask (on the CPU).
    :param batch: mini-batch size.
    :param dev: the device of the model and the data.
    :param flip_forget: flip the selected forget images horizontally.
    """
    x_all, y_all, is_forget = data
    idx = torch.randint(0, len(x_all), (batch,), generator=state.gen)
    idx_dev = idx.to(dev)
    x0, y = x_all[idx_dev], y_all[idx_dev]
    flip = is_forget[idx] & (torch.rand(len(idx), generator=state.gen) < 0.5)
    if flip_forget and bool(flip.any()):
        x0 = torch.where(flip.to(dev)[:, None, None, None], x0.flip(-1), x0)
    loss = loss_fn(state.model, x0, y, state.gen)
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(state.model.parameters(), 1.0)
    state.opt.step()
    state.sched.step()
    state.ema.update_parameters(state.model)
    state.step += 1
    return loss.item()


def _report_step(writer: Any, bar: tqdm, state: _TrainState, loss: float, ema_loss: float) -> None:
    """Tensorboard scalars every 50 steps (loss, learning rate); the progress bar, its loss every 100."""
    if writer is not None and state.step % 50 == 0:
        writer.add_scalar("pretrain/loss", loss, state.step)
        writer.add_scalar("pretrain/lr", state.sched.get_last_lr()[0], state.step)
    bar.update(1)
    if state.step % 100 == 0:
        bar.set_postfix(loss=f"{ema_loss:.4f}")


def _default_command() -> str:
    """The command line of this process, as ``unlearn-gym <arguments>``."""
    return " ".join(shlex.quote(a) for a in ["unlearn-gym", *sys.argv[1:]])


def fit(
    kind: str,
    preset: str,
    model: nn.Module,
    loss_fn: LossFn,
    out: str | os.PathLike,
    *,
    total: int,
    batch: int,
    lr: float,
    ema_decay: float,
    seed: int,
    data: ContaminatedMNIST,
    resume: str | os.PathLike | None = None,
    until: int | None = None,
    save_every: int = 1000,
    log_dir: str | os.PathLike | None = None,
    flip_forget: bool = True,
    progress: bool = True,
    command: str | None = None,
    extra_config: dict[str, Any] | None = None,
    device: DeviceLike = None,
) -> dict[str, Any]:
    """The pretraining loop every generative model of the package shares (DDPM, VAE).

    AdamW with linear warm-up and cosine decay, total-norm clipping 1.0, EMA, uniform mini-batches
    of the contaminated mix from one seeded generator, trousers (never digits) flipped
    horizontally with probability 0.5, a progress bar, tensorboard scalars ``pretrain/loss`` and
    ``pretrain/lr``, atomic checkpoints with a JSON sidecar every ``save_every`` steps and at the end.
    Resuming restores optimizer, schedule, EMA and generator state, so it is bit-identical to an
    uninterrupted run.

    :param kind: checkpoint kind (``"ddpm"``, ``"cvae"``).
    :param preset: preset name (recorded; resume checks it).
    :param model: freshly initialised model (trained in place).
    :param loss_fn: the mini-batch loss; it draws its own randomness from the generator it is given.
    :param out: checkpoint path.
    :param total: total steps (fixes the learning-rate schedule).
    :param batch: mini-batch size.
    :param lr: peak learning rate.
    :param ema_decay: EMA decay.
    :param seed: seed of batches and of ``loss_fn``'s draws (initialisation is the caller's).
    :param data: the contaminated dataset.
    :param resume: checkpoint of the same run to continue from.
    :param until: stop (and save) after this many total steps.
    :param save_every: steps between intermediate checkpoints.
    :param log_dir: tensorboard directory (``None``: no logging).
    :param flip_forget: flip the forget images (trousers) with probability 0.5.
    :param progress: show a progress bar.
    :param command: the command line recorded in the sidecar (default: ``sys.argv``).
    :param extra_config: further settings recorded in the sidecar's ``train`` entry.
    :param device: where the model and the data live (``"cpu"``, ``"cuda"``, ``"auto"``; default the
        CPU). Random numbers are drawn on the CPU either way (:mod:`unlearn_gym.device`), so a run
        draws the same batches and noise on any device.
    :returns: ``model``, ``ema`` (the averaged module), ``step``, ``loss`` (EMA of the loss), ``elapsed_s``.
    """
    p = get_preset(preset)
    dev = resolve_device(device)
    model.to(dev)
    ema = make_ema(model, ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    state = _TrainState(model, ema, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total)),
                        torch.Generator().manual_seed(seed))
    if resume is not None:
        state.resume(resume, kind, p.name, total, seed)
    train_data = (data.train_images.to(dev), data.train_labels.to(dev), data.train_is_forget)
    stop = total if until is None else min(total, until)
    writer = _summary_writer(log_dir)
    config = {"steps": total, "seed": seed, "batch": batch, "lr": lr, "ema_decay": ema_decay,
              "flip_forget": flip_forget, **(extra_config or {})}
    cmd = command or _default_command()

    def save(last_loss: float) -> None:
        save_checkpoint(
            out, kind, p.name, state.payload(config),
            {"preset_config": p.to_dict(), "data": data.meta, "step": state.step, "train": config,
             "final_loss_ema100": last_loss, "train_seconds": round(state.elapsed, 1), "command": cmd},
        )

    model.train()
    desc = f"pretrain {p.name}" if kind == "ddpm" else f"pretrain {kind} {p.name}"
    bar = tqdm(total=stop, initial=state.step, disable=not progress, desc=desc)
    ema_loss = float("nan")
    t0 = time.perf_counter()
    while state.step < stop:
        lv = _train_step(state, loss_fn, train_data, batch=batch, dev=dev, flip_forget=flip_forget)
        ema_loss = lv if math.isnan(ema_loss) else 0.99 * ema_loss + 0.01 * lv
        _report_step(writer, bar, state, lv, ema_loss)
        if state.step % save_every == 0 and state.step < stop:
            state.elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            save(ema_loss)
    bar.close()
    state.elapsed += time.perf_counter() - t0
    save(ema_loss)
    if writer is not None:
        writer.close()
    return {"model": model, "ema": ema.module, "step": state.step, "loss": ema_loss, "elapsed_s": state.elapsed}


def pretrain(
    preset: str = "tiny",
    out: str | os.PathLike = "ddpm.pt",
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
    device: DeviceLike = None,
    retain_only: bool = False,
    task: str = "trousers",
) -> dict[str, Any]:
    """Train the preset's DDPM on the contaminated mix; save a resumable checkpoint (:func:`fit`).

    Resuming from a checkpoint of the same run reproduces the uninterrupted run exactly: the
    optimizer, learning-rate schedule, EMA and the data/noise generator state are all restored.

    :param preset: preset name.
    :param out: checkpoint path (written atomically, with a ``.json`` sidecar).
    :param steps: total training steps (default: the preset's); fixes the learning-rate schedule.
    :param seed: seed of initialisation, batches, noise and timesteps.
    :param data: dataset to train on (default: :func:`build_contaminated_mnist` of the preset).
    :param resume: checkpoint to continue from.
    :param until: stop (and save) after this many total steps, e.g. to train in chunks.
    :param save_every: steps between intermediate checkpoints.
    :param log_dir: tensorboard log directory (``None``: no logging).
    :param flip_forget: augment the forget images (trousers) by random horizontal flips; digits
        are never flipped.
    :param progress: show a progress bar.
    :param command: the command line recorded in the sidecar (default: ``sys.argv``).
    :param device: where to train (``"cpu"``, ``"cuda"``, ``"auto"``; default the CPU).
    :param retain_only: drop the forget images from the training mix (same recipe and seed
        otherwise): the retrained reference of exact unlearning (:meth:`ContaminatedMNIST.retain_only`).
    :param task: whose forget set ``retain_only`` drops: ``"trousers"`` or ``"erase-<digit>"``.
    :returns: the final training state (``model``, ``ema``, ``step``, ...).
    """
    p = get_preset(preset)
    data = data if data is not None else build_contaminated_mnist(p.name)
    data = data.retain_only(task) if retain_only else data
    if data.resolution != p.resolution:
        raise ValueError(f"data resolution {data.resolution} != preset {p.name} ({p.resolution})")
    schedule = NoiseSchedule()
    total = int(steps if steps is not None else p.pretrain_steps)
    with seeded_global_rng(seed):  # initialisation only; batches use the loop's generator
        model = build_unet(p)

    def loss_fn(m: nn.Module, x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return ddpm_pretrain_loss(m, x0, y, gen, schedule)

    return fit("ddpm", p.name, model, loss_fn, out, total=total, batch=p.pretrain_batch, lr=p.pretrain_lr,
               ema_decay=p.ema_decay, seed=seed, data=data, resume=resume, until=until, save_every=save_every,
               log_dir=log_dir, flip_forget=flip_forget, progress=progress, command=command, device=device)


def export_ema(
    checkpoint: str | os.PathLike, out: str | os.PathLike, extra: dict[str, Any] | None = None, kind: str = "ddpm"
) -> Path:
    """Write the EMA weights of a training checkpoint as a small, load-only checkpoint of the same kind.

    :param checkpoint: a checkpoint written by :func:`pretrain` (or :func:`fit`).
    :param out: destination.
    :param extra: metadata merged into the sidecar (e.g. measured quality).
    :param kind: the checkpoint kind (``"ddpm"``, ``"cvae"``).
    """
    from unlearn_gym.checkpoints import read_sidecar

    ck = load_checkpoint(checkpoint, kind)
    ema_state = ema_weights(ck["ema"])
    meta = read_sidecar(checkpoint)
    meta.pop("versions", None)
    meta.update(extra or {})
    return save_checkpoint(out, kind, ck["preset"], {"model": ema_state, "step": ck["step"]}, meta)
