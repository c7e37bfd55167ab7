"""Quick quality figures of a DDPM, measured with the evaluator classifier.

This is the check behind the shipped models' sidecars (Foundation item 7): sample ``n`` images per
label with DDIM, then report the per-label accuracy and the label-1 trouser / one / junk rates.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import NUM_LABELS
from unlearn_gym.diffusion import NoiseSchedule, is_one_step, sample
from unlearn_gym.eval.rates import label_rates, summarize_rates


def sample_labels(
    model: nn.Module, n_per_label: int, *, steps: int = 50, seed: int = 0,
    labels: list[int] | None = None, schedule: NoiseSchedule | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_label`` DDIM samples for each label, from noise seeded by ``seed``.

    Two models sampled with the same arguments start from identical noise (paired comparisons). A
    model with a ``generate(labels, noise)`` method (a one-step generator, the VAE) is sampled by it
    from the same noise.

    :param model: the DDPM (or a model with ``generate``).
    :param n_per_label: samples per label.
    :param steps: DDIM steps.
    :param seed: seed of the initial noise.
    :param labels: labels to sample (default 0..9).
    :param schedule: noise schedule (default: the standard linear one).
    :returns: images ``(N, 1, r, r)`` and their labels.
    """
    labs = torch.tensor(labels if labels is not None else list(range(NUM_LABELS)))
    y = labs.repeat_interleave(n_per_label)
    gen = torch.Generator().manual_seed(seed)
    if is_one_step(model):
        noise = torch.randn(len(y), 1, model.resolution, model.resolution, generator=gen)
        return model.generate(y, noise), y
    x = sample(model, schedule or NoiseSchedule(), y, steps=steps, generator=gen)
    return x, y


def model_quality(
    model: nn.Module, classifier: Classifier, *, n_per_label: int = 100, steps: int = 50,
    seed: int = 0, threshold: float = 0.9,
) -> dict[str, Any]:
    """Per-label accuracy and label-1 trouser / one / junk rates of ``model``'s samples.

    :param model: the DDPM (or a VAE: prior samples; ``steps`` is then unused).
    :param classifier: the evaluator of the same preset.
    :param n_per_label: samples per label.
    :param steps: DDIM steps.
    :param seed: noise seed.
    :param threshold: softmax threshold of a confident prediction.
    """
    t0 = time.perf_counter()
    x, y = sample_labels(model, n_per_label, steps=steps, seed=seed)
    rates = label_rates(classifier, x, y, threshold=threshold)
    return {
        **summarize_rates(rates),
        "per_label": {str(k): v.to_dict() for k, v in sorted(rates.items())},
        "n_per_label": n_per_label,
        "n_samples": len(y),
        "ddim_steps": steps,
        "seed": seed,
        "threshold": threshold,
        "seconds": round(time.perf_counter() - t0, 1),
    }
