"""Distance to the retrained model: what a model draws compared with what exact unlearning draws.

One :func:`~unlearn_gym.eval.evaluate.evaluate` call with the retrained model as the reference
samples both models from the same noise and labels; the differences (model minus retrained) of
its headline numbers are the distance:

* ``trouser_rate``: label-1 samples the classifier calls a confident trouser; 95 % CI of the
  difference by the paired (McNemar-style) normal approximation over the sample pairs;
* ``retain_fid``: FID of the retain samples against held-out digits (classifier features); a point
  estimate: over sampling seeds 0-3 the pretrained-minus-retrained difference of the micro DDPM
  (ratio 0.5) ranged from +0.01 to +0.24, on FIDs of 3.6-4.0 (docs/forgetting.md);
* per-label accuracy: the largest absolute difference over the labels 0..9, and each label's; over
  the *kept* labels (every label but the task's forget label): the mean difference
  (``kept_accuracy``) and the largest (``max_kept_label_accuracy``). For ``erase-<d>`` these are the
  retain measures to read: ``retain_fid`` and ``retain_accuracy`` pool every label but 1, so they
  include digit ``d``, whose retrained samples are not ``d``'s by design;
* the paired SSIM of the samples against the retrained model's (1: identical samples);
* ``forget_rate``: the task's forget score on the forget label's samples, paired like the trouser
  rate: for ``trousers`` the trouser rate itself, for ``erase-<d>`` the share of label-``d`` samples
  the classifier calls ``d`` (the erased digit's accuracy; ``samples_per_label`` pairs).

Both models' numbers are kept, so nothing is recomputed for a report.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import ContaminatedMNIST
from unlearn_gym.eval.rates import forget_hits, forget_label_of

__all__ = ["distance_to_retrained", "paired_rate_difference"]


def paired_rate_difference(a: torch.Tensor, b: torch.Tensor, z: float = 1.96) -> tuple[float, float, float]:
    """Difference of two paired proportions ``mean(a) - mean(b)`` and its normal-approximation 95 % CI.

    :param a: booleans of the model's samples.
    :param b: booleans of the paired reference samples.
    """
    d = a.float() - b.float()
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(unbiased=True)) if n > 1 else float("nan")
    half = z * sd / math.sqrt(n) if n > 1 else float("nan")
    return mean, mean - half, mean + half


def distance_to_retrained(
    model: nn.Module,
    retrained: nn.Module,
    preset: str,
    *,
    task: str = "trousers",
    classifier: Classifier | None = None,
    data: ContaminatedMNIST | None = None,
    samples_per_label: int = 50,
    forget_samples: int | None = None,
    steps: int = 50,
    seed: int = 0,
    threshold: float = 0.9,
    progress: bool = False,
) -> dict[str, Any]:
    """Differences of ``model``'s evaluation to its retrained reference's, from paired samples.

    :param model: the model to test.
    :param retrained: the model retrained without the forget set.
    :param preset: preset of both.
    :param task: ``"trousers"`` or ``"erase-<d>"``: whose forget rate ``forget_rate`` is.
    :param classifier: evaluator (default: the preset's shipped one).
    :param data: dataset of the real references (default: the preset's).
    :param samples_per_label: samples per retain label.
    :param forget_samples: label-1 samples (default ``6 * samples_per_label``).
    :param steps: DDIM steps.
    :param seed: sampling seed.
    :param threshold: confidence threshold.
    :param progress: progress bar.
    :returns: ``model`` and ``retrained`` (headline numbers and ``forget_rate``), ``difference`` (trouser
        rate and the task's forget rate with CIs, retain FID, retain accuracy, max per-label accuracy
        difference, and over the labels other than the forget label the mean and max accuracy
        difference), ``per_label`` rows, ``ssim``, ``seconds``.
    """
    from unlearn_gym.eval.evaluate import evaluate

    report = evaluate(model, retrained, preset, classifier=classifier, data=data,
                      samples_per_label=samples_per_label, forget_samples=forget_samples, steps=steps,
                      seed=seed, threshold=threshold, model_name="model", reference_name="retrained",
                      progress=progress)
    s, r = report.summary, report.reference_summary or {}
    if classifier is None:
        from unlearn_gym.pretrained import load_classifier

        classifier = load_classifier(preset)
    assert report.samples is not None
    labels = report.samples["labels"]

    samples, clf = report.samples, classifier

    def paired(task_: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per pair of the task's forget-label samples: model's and retrained model's forget hit."""
        sel = labels == forget_label_of(task_)
        return (forget_hits(clf, samples["model"][sel].cpu(), task_, threshold),
                forget_hits(clf, samples["reference"][sel].cpu(), task_, threshold))

    a, b = paired("trousers")
    d, lo, hi = paired_rate_difference(a, b)
    fa, fb = (a, b) if task == "trousers" else paired(task)
    fd, flo, fhi = paired_rate_difference(fa, fb)
    per_label = [{"label": row["label"], "accuracy": row["accuracy"],
                  "retrained_accuracy": row.get("reference_accuracy"),
                  "difference": None if row.get("reference_accuracy") is None
                  else row["accuracy"] - row["reference_accuracy"]} for row in report.per_class]
    acc_diffs = [abs(p["difference"]) for p in per_label if p["difference"] is not None]
    kept = [p["difference"] for p in per_label if p["difference"] is not None and p["label"] != forget_label_of(task)]
    keys = ("trouser_rate", "one_rate", "junk_rate", "retain_fid", "retain_kid", "retain_accuracy", "forget_fid")
    return {
        "model": {**{k: s.get(k) for k in keys}, "forget_rate": float(fa.float().mean())},
        "retrained": {**{k: r.get(k) for k in keys}, "forget_rate": float(fb.float().mean())},
        "difference": {
            "trouser_rate": {"value": d, "low": lo, "high": hi},
            "forget_rate": {"value": fd, "low": flo, "high": fhi},
            "retain_fid": s["retain_fid"] - r["retain_fid"],
            "retain_accuracy": s["retain_accuracy"] - r["retain_accuracy"],
            "max_label_accuracy": max(acc_diffs) if acc_diffs else None,
            "kept_accuracy": sum(kept) / len(kept) if kept else None,
            "max_kept_label_accuracy": max(abs(v) for v in kept) if kept else None,
        },
        "per_label": per_label,
        "ssim": {"retain": s.get("retain_ssim"), "forget": s.get("forget_ssim")},
        "config": {"task": task, "samples_per_label": samples_per_label, "forget_samples": len(a),
                   "forget_rate_pairs": len(fa), "steps": steps, "seed": seed, "threshold": threshold},
        "seconds": report.timing.get("total_s"),
    }
