"""The evaluator: a small CNN over 11 classes (digits 0-9 and "trouser") at a preset's resolution.

It is the measuring instrument of the project: trouser / one / junk rates use its softmax, FID and
KID use its penultimate features, IS its class probabilities. It sits below both
:mod:`unlearn_gym.pretrained` (which ships one per preset) and :mod:`unlearn_gym.eval` (which measures
with it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from unlearn_gym.checkpoints import load_checkpoint, save_checkpoint
from unlearn_gym.data import NUM_LABELS, TROUSER_CLASS, ContaminatedMNIST, build_contaminated_mnist
from unlearn_gym.presets import Preset, get_preset
from unlearn_gym.rng import seeded_global_rng

NUM_CLASSES = NUM_LABELS + 1  # digits + trouser


class Classifier(nn.Module):
    """Two conv blocks, global average pooling, a feature layer and an 11-way head.

    :param resolution: input side (images ``(N, 1, r, r)`` in [-1, 1]).
    :param channels: widths of the two conv blocks.
    :param feature_dim: width of the penultimate (feature) layer.
    """

    def __init__(self, resolution: int, channels: tuple[int, int] = (32, 64), feature_dim: int = 128):
        super().__init__()
        c1, c2 = channels
        self.resolution, self.feature_dim = resolution, feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
        )
        side = resolution // 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c2 * side * side, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_dim)`` (used for FID / KID)."""
        return self.fc(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 11)``; class 10 is "trouser"."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Softmax probabilities in eval mode, batched."""
        was = self.training
        self.eval()
        out = torch.cat([F.softmax(self(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])
        self.train(was)
        return out


def build_classifier(preset: str | Preset) -> Classifier:
    p = get_preset(preset)
    return Classifier(p.resolution, p.classifier_channels)


def classifier_data(data: ContaminatedMNIST, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, 11-class labels) for training (``"train"``) or held-out testing (``"test"``)."""
    if split == "train":
        trousers = torch.cat([data.forget_images, data.aux_trousers])
        x, y = data.retain_images, data.retain_labels
    elif split == "test":
        trousers, x, y = data.test_trousers, data.test_images, data.test_labels
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return torch.cat([x, trousers]), torch.cat([y, torch.full((len(trousers),), TROUSER_CLASS)])


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random ±1 pixel shifts for all; random horizontal flips for trousers only (never digits)."""
    n, r = len(x), x.shape[-1]
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (n,), generator=gen)
    dy = torch.randint(0, 3, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(r)[None]).view(n, 1, r, 1).expand(n, 1, r, r + 2)
    out = pad.gather(2, rows)
    cols = (dx[:, None] + torch.arange(r)[None]).view(n, 1, 1, r).expand(n, 1, r, r)
    out = out.gather(3, cols)
    flip = (y == TROUSER_CLASS) & (torch.rand(n, generator=gen) < 0.5)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


@torch.no_grad()
def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.predict_proba(x).argmax(1) == y).float().mean())


def train_classifier(
    preset: str = "tiny",
    out: str | os.PathLike | None = None,
    *,
    data: ContaminatedMNIST | None = None,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    progress: bool = True,
    command: str | None = None,
) -> tuple[Classifier, dict[str, Any]]:
    """Train the evaluator on real digits and real trousers; measure held-out accuracy.

    :param preset: preset name (fixes the resolution and widths).
    :param out: optional checkpoint path (atomic, with a sidecar holding the measured accuracy).
    :param data: dataset (default: the preset's contaminated dataset).
    :param epochs: epochs (default: the preset's).
    :param seed: seed of initialisation, shuffling and augmentation.
    :param batch_size: mini-batch size.
    :param lr: peak Adam learning rate (one-cycle cosine).
    :param progress: show a progress bar.
    :param command: command line recorded in the sidecar.
    :returns: the model (eval mode) and a metrics dict (held-out accuracy overall, on digits, on
        trousers, per class, and training time).
    """
    p = get_preset(preset)
    data = data if data is not None else build_contaminated_mnist(p.name)
    epochs = epochs or p.classifier_epochs
    with seeded_global_rng(seed):  # initialisation only; batches use `gen`
        model = build_classifier(p)
    gen = torch.Generator().manual_seed(seed)
    x, y = classifier_data(data, "train")
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.perf_counter()
    model.train()
    with tqdm(total=steps, disable=not progress, desc=f"classifier {p.name}") as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = perm[i : i + batch_size]
                xb = _augment(x[idx], y[idx], gen)
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
    train_s = time.perf_counter() - t0
    model.eval()
    xt, yt = classifier_data(data, "test")
    pred = model.predict_proba(xt).argmax(1)
    digits = yt < TROUSER_CLASS
    metrics = {
        "test_accuracy": float((pred == yt).float().mean()),
        "test_digit_accuracy": float((pred[digits] == yt[digits]).float().mean()),
        "test_trouser_accuracy": float((pred[~digits] == yt[~digits]).float().mean()),
        "per_class_accuracy": [float((pred[yt == c] == c).float().mean()) for c in range(NUM_CLASSES)],
        "n_test": len(yt),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(train_s, 1),
    }
    if out is not None:
        save_checkpoint(out, "classifier", p.name, {"model": model.state_dict()},
                        {"metrics": metrics, "data": data.meta, "command": command})
    return model, metrics


def load_classifier_file(path: str | os.PathLike, preset: str | None = None) -> Classifier:
    """Load a classifier checkpoint (eval mode)."""
    ck = load_checkpoint(path, "classifier", preset)
    model = build_classifier(ck["preset"])
    model.load_state_dict(ck["model"])
    return model.eval()
