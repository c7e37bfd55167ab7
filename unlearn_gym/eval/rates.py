"""Classifier-based rates: trouser / one / junk rates on label-1 samples, digit accuracy per label,
and the task's forget signal (:func:`forget_label_of`, :func:`forget_hits`, :func:`forget_score`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS, TROUSER_CLASS
from unlearn_gym.data.contaminated import check_task


@dataclass(frozen=True)
class LabelRates:
    """What the classifier says about samples drawn for one label.

    :param label: the conditioning label.
    :param n: number of samples.
    :param accuracy: share classified (argmax) as ``label``.
    :param confident_label: share classified as ``label`` with softmax > threshold.
    :param confident_trouser: share classified as trouser with softmax > threshold.
    :param junk: share whose max softmax is below ``junk_threshold`` (damaged samples).
    """

    label: int
    n: int
    accuracy: float
    confident_label: float
    confident_trouser: float
    junk: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def label_rates(
    classifier: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    threshold: float = 0.9,
    junk_threshold: float = 0.5,
    probs: torch.Tensor | None = None,
) -> dict[int, LabelRates]:
    """Per-label rates of generated (or real) images.

    :param classifier: the evaluator.
    :param images: images ``(N, 1, r, r)`` in [-1, 1].
    :param labels: the label each image was drawn for (0..9).
    :param threshold: softmax above which a prediction counts as confident.
    :param junk_threshold: max softmax below which a sample counts as junk.
    :param probs: the classifier's softmax of ``images`` when already computed (e.g. in a larger batch).
    """
    if probs is None:
        probs = classifier.predict_proba(images)
    conf, pred = probs.max(1)
    out = {}
    for lab in labels.unique().tolist():
        m = labels == lab
        out[int(lab)] = LabelRates(
            label=int(lab),
            n=int(m.sum()),
            accuracy=float((pred[m] == lab).float().mean()),
            confident_label=float(((pred[m] == lab) & (conf[m] > threshold)).float().mean()),
            confident_trouser=float(((pred[m] == TROUSER_CLASS) & (conf[m] > threshold)).float().mean()),
            junk=float((conf[m] < junk_threshold).float().mean()),
        )
    return out


def summarize_rates(rates: dict[int, LabelRates]) -> dict[str, float]:
    """Headline figures: label-1 trouser / one / junk rates and accuracy on the other labels."""
    forget = rates[CONTAMINATED_LABEL]
    others = [r for lab, r in rates.items() if lab != CONTAMINATED_LABEL and lab < NUM_LABELS]
    n_other = sum(r.n for r in others)
    return {
        "trouser_rate": forget.confident_trouser,
        "one_rate": forget.confident_label,
        "junk_rate": forget.junk,
        "other_accuracy": sum(r.accuracy * r.n for r in others) / max(1, n_other),
        "min_other_accuracy": min((r.accuracy for r in others), default=float("nan")),
    }


def forget_label_of(task: str) -> int:
    """The label whose samples carry the forget signal (1 for ``trousers``, ``d`` for ``erase-d``).

    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    """
    return CONTAMINATED_LABEL if check_task(task) == "trousers" else int(task.split("-", 1)[1])


def forget_score(rates: LabelRates, task: str) -> float:
    """The forget score of the forget label's rates: the confident-trouser rate for ``trousers``, the
    classifier's (argmax) accuracy for ``erase-<d>`` (the outcome's ``F``; lower is better).

    :param rates: :func:`label_rates` of the forget label's samples.
    :param task: the task.
    """
    return rates.confident_trouser if check_task(task) == "trousers" else rates.accuracy


def forget_hits(classifier: Classifier, images: torch.Tensor, task: str, threshold: float = 0.9) -> torch.Tensor:
    """Per sample of the forget label: does it carry the forget signal? The mean is :func:`forget_score`
    (``trousers``: a confident trouser, softmax > ``threshold``; ``erase-<d>``: classified as ``d``).

    :param classifier: the evaluator.
    :param images: samples drawn for :func:`forget_label_of` ``(task)``.
    :param task: the task.
    :param threshold: softmax of a confident trouser.
    """
    conf, pred = classifier.predict_proba(images).max(1)
    if check_task(task) == "trousers":
        return (pred == TROUSER_CLASS) & (conf > threshold)
    return pred == forget_label_of(task)
