"""The outcome score of an unlearning episode: did the model forget, and did it keep the rest?

The paper's reward (−L_SISS) does not say whether unlearning worked: importance sampling makes its
expectation independent of λ. The outcome score measures the result directly, the way
DACBench-style benchmarks use the target algorithm's own metric. The model is sampled with DDIM
(a model with a ``generate(labels, noise)`` method, e.g. the VAE, by that method: prior samples)
from **fixed initial noise** (common random numbers: every episode and every policy is scored on
the same noise, so two policies' scores differ by what they did to the model, not by sampling
luck), and the evaluator classifier that ships with the preset scores the samples.

* **forget score** ``F``: for ``task="trousers"`` the confident-trouser rate of label-1 samples
  (softmax > 0.9); for ``erase-<d>`` the classifier's accuracy on label-``d`` samples. Lower is
  better.
* **retain score**: ``R`` the mean and ``R_worst`` the worst per-digit **confident accuracy**
  (classified as the label with softmax > 0.9) over the retain labels (every label except the
  forget label), and for ``trousers`` the confident-one rate ``O`` of the label-1 samples (the real
  ones must stay). Confident, not argmax, accuracy: with few DDIM steps the samples of a damaged
  model are still classified correctly but with less confidence (score version 1 used argmax
  accuracy and missed retain damage that a DDIM-50 evaluation shows; docs/headroom.md).
* **outcome** (the scalar, in ``[-1, 1]``, higher is better)::

      removed = (F_0 - F) / F_0                      share of the forget signal removed
      drop    = max(R_0 - R, O_0 - O)                retain damage (trousers; erase: R_0 - R)
      outcome = clip(removed - max(0, drop - tol) / tol, -1, 1)

  ``F_0, R_0, O_0`` are the same measures of the starting model θ_0 on the same noise. Forgetting
  counts in full while the retain side stays within ``tol`` (5 points by default); every further
  ``tol`` of damage costs one whole unit, so destroying the model scores below doing nothing (0).

``info["outcome"]["version"]`` is :data:`OUTCOME_VERSION`; compare scores of one version only.

Standard errors are binomial (``sqrt(p(1-p)/n)``); ``outcome_se`` propagates the forget part
(``se(F)/F_0``), which dominates while the retain side is within tolerance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from unlearn_gym.cache import cached, tensor_digest
from unlearn_gym.classifier import Classifier
from unlearn_gym.data import NUM_LABELS
from unlearn_gym.diffusion.one_step import is_one_step, sample_images
from unlearn_gym.diffusion.samplers import ddim_sample_many
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.eval.rates import forget_label_of, forget_score, label_rates

#: bumped whenever the definition of the score changes (2: retain side by confident accuracy)
OUTCOME_VERSION = 2


@dataclass(frozen=True)
class OutcomeConfig:
    """How the outcome score samples and scores a model.

    :param n_forget: samples drawn for the forget label.
    :param n_per_retain: samples drawn for each retain label.
    :param steps: DDIM steps (few: the score ranks models, it is not a quality figure).
    :param noise_seed: seed of the fixed initial noise (common random numbers).
    :param tolerance: retain damage (accuracy points as a fraction) that costs nothing.
    :param threshold: softmax above which a prediction counts as confident.
    """

    n_forget: int = 256
    n_per_retain: int = 16
    steps: int = 8
    noise_seed: int = 20261130
    tolerance: float = 0.05
    threshold: float = 0.9

    def __post_init__(self) -> None:
        for name in ("n_forget", "n_per_retain", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"outcome {name} must be >= 1, got {getattr(self, name)!r}")
        if not (0.0 < self.tolerance < 1.0):
            raise ValueError(f"outcome tolerance must be in (0, 1), got {self.tolerance!r}")
        if not (0.0 < self.threshold < 1.0):
            raise ValueError(f"outcome threshold must be in (0, 1), got {self.threshold!r}")


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 0.0) / max(n, 1))


class OutcomeScorer:
    """Scores models of one preset and task on fixed noise against a reference model θ_0.

    :param reference: the starting model θ_0 (measured once, here).
    :param classifier: the evaluator classifier of the preset.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param config: sample counts, DDIM steps, noise seed, tolerance.
    """

    def __init__(self, reference: nn.Module, classifier: Classifier, task: str,
                 config: OutcomeConfig | None = None):
        self.config = config or OutcomeConfig()
        self.task = task
        self.classifier = classifier
        self.schedule = NoiseSchedule()
        self.forget_label = forget_label_of(task)
        self.retain_labels = [d for d in range(NUM_LABELS) if d != self.forget_label]
        c = self.config
        self.labels = torch.cat([
            torch.full((c.n_forget,), self.forget_label, dtype=torch.long),
            torch.tensor(self.retain_labels).repeat_interleave(c.n_per_retain),
        ])
        res = classifier.resolution
        gen = torch.Generator().manual_seed(c.noise_seed)
        self.noise = torch.randn(len(self.labels), 1, res, res, generator=gen)
        # deterministic (fixed noise), so measured once per machine: unlearn_gym.cache
        key = {"model": tensor_digest(reference), "classifier": tensor_digest(classifier), "task": task,
               "config": asdict(c), "version": OUTCOME_VERSION, "family": type(reference).__name__,
               "device": str(next(reference.parameters()).device.type)}
        self.reference = cached("outcome-reference", key, lambda: self.measure(reference))

    @property
    def n_samples(self) -> int:
        """Images sampled per score."""
        return len(self.labels)

    def measure(self, model: nn.Module) -> dict[str, float]:
        """Raw measures of ``model``: forget score, one rate, mean and worst retain (confident)
        accuracy, and that of every retain label (``per_label``, keyed by the label as a string;
        plain argmax accuracy in ``per_label_argmax``)."""
        images = sample_images(model, self.schedule, self.labels, self.noise, steps=self.config.steps)
        return self._measures(images)

    def measure_many(self, models: list[nn.Module]) -> list[dict[str, float]]:
        """:meth:`measure` of several models of one architecture at once: the DDPMs' DDIM chains as
        one batched computation (:func:`~unlearn_gym.diffusion.samplers.ddim_sample_many`), the
        classifier over all their images in one pass. Equal to :meth:`measure` up to the float
        reordering of batched kernels (a sample whose confidence sits at the threshold may flip).

        :param models: the models (DDPMs, or models with ``generate``: those are sampled one by one).
        """
        if len(models) == 1 or any(is_one_step(m) for m in models):
            return [self.measure(m) for m in models]
        images = ddim_sample_many(models, self.schedule, self.labels, self.noise, steps=self.config.steps)
        k, n = images.shape[:2]
        with torch.no_grad():
            probs = self.classifier.predict_proba(images.reshape(k * n, *images.shape[2:])).reshape(k, n, -1)
        return [self._measures(images[i], probs[i]) for i in range(k)]

    def _measures(self, images: torch.Tensor, probs: torch.Tensor | None = None) -> dict[str, Any]:
        c = self.config
        with torch.no_grad():
            rates = label_rates(self.classifier, images, self.labels, threshold=c.threshold, probs=probs)
        f = rates[self.forget_label]
        forget = forget_score(f, self.task)
        one = f.confident_label if self.task == "trousers" else float("nan")
        # string keys: info dicts go through gymnasium's vector wrappers (DictInfoToList) and JSON
        per_label = {str(lab): rates[lab].confident_label for lab in self.retain_labels}
        argmax = {str(lab): rates[lab].accuracy for lab in self.retain_labels}
        accs = list(per_label.values())
        return {"forget": forget, "one_rate": one, "retain_mean": sum(accs) / len(accs),
                "retain_worst": min(accs), "per_label": per_label, "per_label_argmax": argmax}

    def score(self, model: nn.Module) -> dict[str, Any]:
        """The outcome of ``model``: raw measures, the combined scalar and standard errors."""
        return self._score(self.measure(model))

    def score_many(self, models: list[nn.Module]) -> list[dict[str, Any]]:
        """:meth:`score` of several models at once (:meth:`measure_many`).

        :param models: the models.
        """
        return [self._score(m) for m in self.measure_many(models)]

    def _score(self, m: dict[str, Any]) -> dict[str, Any]:
        c, ref = self.config, self.reference
        f0 = ref["forget"]
        removed = (f0 - m["forget"]) / f0 if f0 > 0 else 0.0
        drop = ref["retain_mean"] - m["retain_mean"]
        if self.task == "trousers":
            drop = max(drop, ref["one_rate"] - m["one_rate"])
        penalty = max(0.0, drop - c.tolerance) / c.tolerance
        outcome = min(1.0, max(-1.0, removed - penalty))
        return {
            "outcome": outcome,
            "forget": m["forget"],
            "forget_removed": removed,
            "retain_mean": m["retain_mean"],
            "retain_worst": m["retain_worst"],
            "retain_per_label": m["per_label"],
            "retain_per_label_argmax": m["per_label_argmax"],
            "one_rate": m["one_rate"],
            "retain_drop": drop,
            "forget_se": _se(m["forget"], c.n_forget),
            "outcome_se": _se(m["forget"], c.n_forget) / f0 if f0 > 0 else float("nan"),
            "retain_se": _se(m["retain_mean"], c.n_per_retain * len(self.retain_labels)),
            "reference": dict(ref),
            "task": self.task,
            "version": OUTCOME_VERSION,
            "config": asdict(c),
        }
