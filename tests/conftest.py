"""Shared fixtures. Tests use the `micro` preset; anything at `tiny` scale is marked `slow`."""

from __future__ import annotations

import numpy as np
import pytest

from unlearn_gym.data import write_idx


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
