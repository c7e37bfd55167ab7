"""Shared fixtures. Tests use the `micro` preset; anything at `tiny` scale is marked `slow`."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from unlearn_gym.data import write_idx


def pytest_configure(config):
    """Every test session measures into a fresh measurement cache (unlearn_gym.cache), not the user's."""
    os.environ["UNLEARN_GYM_CACHE_DIR"] = tempfile.mkdtemp(prefix="unlearn-gym-test-cache-")


@pytest.fixture
def idx_dir(tmp_path):
    """A torchvision-style raw/ folder of small synthetic MNIST-like IDX files (gzip)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 100)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


@pytest.fixture
def load_pretrained_calls(monkeypatch):
    """The keyword arguments of every ``unlearn_gym.pretrained.load_pretrained`` call (it still loads)."""
    import unlearn_gym.pretrained as pretrained

    calls = []
    real = pretrained.load_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrained, "load_pretrained", spy)
    return calls
