"""Seeding without side effects on the caller's global random stream."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
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


@contextlib.contextmanager
def preserved_global_rngs() -> Iterator[None]:
    """Restore torch's (CPU and CUDA), NumPy's and Python's global random states on exit.

    For code that seeds or draws from them on purpose (Stable-Baselines3's ``set_random_seed``,
    torchmetrics): the caller's streams continue as if the block had not run.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
