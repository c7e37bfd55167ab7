"""Relearning: how fast fine-tuning on the forget set brings the forgotten concept back (docs/forgetting.md).

A model that only stopped drawing trousers, but still holds them, draws them again after a few
fine-tuning steps on the forget images; a model that never saw them (the retrained reference) has
to learn them from scratch. The test fine-tunes a copy of the model for ``k`` steps on the forget
set with a fixed recipe and records the trouser rate of its label-1 samples at a few checkpoints.

Recipe (fixed, so curves of different models are comparable): AdamW (lr ``lr``, no weight decay),
mini-batches of ``batch`` forget images drawn with replacement, conditioned on label 1, the model
family's own pretraining loss (the DDPM's denoising loss, the VAE's negative ELBO at σ 0.3), total
gradient-norm clipping 1.0, raw weights (no EMA). Batches and the loss's noise come from one
generator seeded by ``seed``.

Trouser rate: ``n_samples`` label-1 samples (DDIM with ``ddim_steps`` steps for a DDPM, prior
samples for a VAE), all checkpoints from the same noise (common random numbers), the share the
evaluator classifier calls a trouser with softmax > ``threshold`` (the outcome's rate,
:mod:`unlearn_gym.eval.rates`).

Class erasure (``task="erase-<d>"``): the forget set is every real training image of ``d``
(:func:`~unlearn_gym.data.task_split`), fine-tuned on with its label ``d``, and the rate is the share
of label-``d`` samples the classifier calls ``d`` (argmax: the erased digit's accuracy, the outcome's
and the benchmark's forget score for erase tasks, :func:`~unlearn_gym.eval.rates.forget_score`).
:func:`forget_rate` measures either task's rate.

Summary: the steps to regain half of ``F0`` (the pretrained model's trouser rate, measured with the
same sampler), linearly interpolated between checkpoints; ``None`` when the curve does not reach it
within ``k`` steps. Noise: each rate is a binomial proportion of ``n_samples`` (its Wilson 95 % CI
is recorded); the fine-tuning seed adds run-to-run noise, which :func:`relearning_curve` averages
over ``seeds``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import ContaminatedMNIST, task_split
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.diffusion.train import ddpm_pretrain_loss
from unlearn_gym.eval.quality import sample_labels
from unlearn_gym.eval.rates import forget_hits, forget_label_of
from unlearn_gym.objectives.vae import VAENoise, vae_loss

#: fine-tuning steps at which the trouser rate is measured
DEFAULT_CHECKPOINTS = (0, 2, 5, 10, 20, 40, 80)
#: the relearning fine-tune's AdamW learning rate (validated on micro; tiny uses 1e-4: eval/forgetting.RELEARN_LR)
DEFAULT_LR = 5e-4

__all__ = ["DEFAULT_CHECKPOINTS", "forget_rate", "relearning_curve", "steps_to_fraction", "trouser_rate", "wilson"]


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95 % interval of a proportion ``p`` of ``n`` trials."""
    if n == 0:
        return (float("nan"), float("nan"))
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.no_grad()
def forget_rate(
    model: nn.Module, classifier: Classifier, *, task: str = "trousers", n_samples: int = 200, ddim_steps: int = 20,
    seed: int = 0, threshold: float = 0.9,
) -> float:
    """The task's forget score of ``n_samples`` samples of its forget label: for ``trousers`` the share of
    label-1 samples the classifier calls a trouser with softmax > ``threshold``; for ``erase-<d>`` the
    share of label-``d`` samples it calls ``d`` (:func:`~unlearn_gym.eval.rates.forget_hits`).

    :param model: a DDPM or a VAE.
    :param classifier: the preset's evaluator.
    :param task: ``"trousers"`` or ``"erase-<d>"``.
    :param n_samples: samples of the forget label.
    :param ddim_steps: DDIM steps (a VAE ignores them).
    :param seed: seed of the sampling noise.
    :param threshold: confidence threshold of a trouser.
    """
    was_training = model.training
    model.eval()
    x, _ = sample_labels(model, n_samples, steps=ddim_steps, seed=seed, labels=[forget_label_of(task)])
    model.train(was_training)
    return float(forget_hits(classifier, x.cpu(), task, threshold).float().mean())


def trouser_rate(
    model: nn.Module, classifier: Classifier, *, n_samples: int = 200, ddim_steps: int = 20, seed: int = 0,
    threshold: float = 0.9,
) -> float:
    """:func:`forget_rate` of the ``trousers`` task: confident trousers among label-1 samples.

    :param model: a DDPM or a VAE.
    :param classifier: the preset's evaluator.
    :param n_samples: label-1 samples.
    :param ddim_steps: DDIM steps (a VAE ignores them).
    :param seed: seed of the sampling noise.
    :param threshold: confidence threshold.
    """
    return forget_rate(model, classifier, n_samples=n_samples, ddim_steps=ddim_steps, seed=seed, threshold=threshold)


def steps_to_fraction(steps: Sequence[int], rates: Sequence[float], target: float) -> float | None:
    """First step at which the curve reaches ``target``, linearly interpolated; ``None`` if never.

    :param steps: checkpoint steps (increasing).
    :param rates: the rate at each.
    :param target: the rate to reach.
    """
    for k, (s, r) in enumerate(zip(steps, rates)):
        if r >= target:
            if k == 0:
                return float(s)
            s0, r0 = steps[k - 1], rates[k - 1]
            return float(s0 + (s - s0) * (target - r0) / (r - r0))
    return None


def _loss_fn(model: nn.Module):
    from unlearn_gym.pretrained import model_family

    if model_family(model) == "cvae":
        level = VAENoise()
        return lambda m, x, y, g: vae_loss(m, level, x, y, generator=g)
    schedule = NoiseSchedule()
    return lambda m, x, y, g: ddpm_pretrain_loss(m, x, y, g, schedule)


def _one_run(model: nn.Module, forget: torch.Tensor, labels: torch.Tensor, classifier: Classifier,
             checkpoints: Sequence[int], *, lr: float, batch: int, seed: int, rate_kw: dict[str, Any]) -> list[float]:
    m = copy.deepcopy(model)
    dev = next(m.parameters()).device
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = _loss_fn(m)
    x_all, y_all = forget.to(dev), labels.to(dev)
    rates, step = [], 0
    for c in checkpoints:
        while step < c:
            idx = torch.randint(0, len(x_all), (batch,), generator=gen).to(dev)
            loss = loss_fn(m, x_all[idx], y_all[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            step += 1
        rates.append(forget_rate(m, classifier, **rate_kw))
    return rates


def relearning_curve(
    model: nn.Module,
    data: ContaminatedMNIST,
    classifier: Classifier,
    *,
    task: str = "trousers",
    f0: float | None = None,
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    lr: float = DEFAULT_LR,
    batch: int = 32,
    seeds: Sequence[int] = (0,),
    n_samples: int = 200,
    ddim_steps: int = 20,
    sample_seed: int = 0,
    threshold: float = 0.9,
) -> dict[str, Any]:
    """Fine-tune copies of ``model`` on the task's forget set; its forget rate at each checkpoint.

    ``model`` itself is left unchanged.

    :param model: a DDPM or a VAE.
    :param data: the contaminated dataset (the task's forget set, :func:`~unlearn_gym.data.task_split`,
        is fine-tuned on with its labels).
    :param classifier: the preset's evaluator.
    :param task: ``"trousers"`` (the rate: confident trousers among label-1 samples) or ``"erase-<d>"``
        (the rate: label-``d`` samples classified as ``d``).
    :param f0: the pretrained model's rate with this sampler (``None``: not summarised).
    :param checkpoints: increasing fine-tuning steps at which the rate is measured (0: the model as is).
    :param lr: AdamW learning rate.
    :param batch: forget images per step (drawn with replacement).
    :param seeds: fine-tuning seeds; the curve is their mean.
    :param n_samples: samples of the forget label per rate.
    :param ddim_steps: DDIM steps of the samples.
    :param sample_seed: seed of the sampling noise (the same at every checkpoint).
    :param threshold: confidence threshold of a trouser.
    :returns: ``steps``, ``rates`` (mean over seeds), ``rates_ci`` (Wilson 95 % of the pooled samples),
        ``per_seed``, ``f0``, ``steps_to_half_f0``, ``mean_rate`` (the curve's trapezoidal average over
        the steps: a second summary, less coarse than the first when F0 is small), ``config`` and
        ``seconds``.
    """
    _, _, forget, labels = task_split(data, task)
    if len(forget) == 0:
        raise ValueError(f"the dataset has no forget images of task {task!r}: pass the contaminated dataset")
    checkpoints = [int(c) for c in checkpoints]
    if checkpoints != sorted(checkpoints) or checkpoints[0] < 0:
        raise ValueError(f"checkpoints must be increasing and >= 0, got {checkpoints}")
    t0 = time.perf_counter()
    rate_kw = {"task": task, "n_samples": n_samples, "ddim_steps": ddim_steps, "seed": sample_seed,
               "threshold": threshold}
    per_seed = {int(s): _one_run(model, forget, labels, classifier, checkpoints, lr=lr, batch=batch,
                                 seed=int(s), rate_kw=rate_kw) for s in seeds}
    rates = [sum(r[k] for r in per_seed.values()) / len(per_seed) for k in range(len(checkpoints))]
    n = n_samples * len(per_seed)
    half = None if f0 is None else steps_to_fraction(checkpoints, rates, 0.5 * f0)
    span = checkpoints[-1] - checkpoints[0]
    mean_rate = (sum((b - a) * (ra + rb) / 2 for a, b, ra, rb in zip(checkpoints, checkpoints[1:], rates, rates[1:]))
                 / span if span > 0 else rates[0])
    return {
        "steps": checkpoints, "rates": rates, "rates_ci": [wilson(r, n) for r in rates],
        "per_seed": per_seed, "f0": f0, "steps_to_half_f0": half, "mean_rate": mean_rate,
        "config": {"task": task, "lr": lr, "batch": batch, "seeds": list(per_seed), "n_samples": n_samples,
                   "ddim_steps": ddim_steps, "sample_seed": sample_seed, "threshold": threshold,
                   "optimizer": "AdamW", "clip": 1.0},
        "seconds": round(time.perf_counter() - t0, 1),
    }
