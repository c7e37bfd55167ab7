"""Seeding without side effects on the caller's global random stream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Fork torch's global CPU RNG, seed it, and restore it on exit.

    For code that can only draw from the global RNG (``nn.Module`` initialisation, torchmetrics'
    KID subsets and IS splits): the draws are reproducible and the caller's stream is untouched.

    :param seed: seed used inside the block.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
