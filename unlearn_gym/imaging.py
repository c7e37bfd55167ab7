"""Image grids and PNG files."""

from __future__ import annotations

import io
import os

import numpy as np
import torch

from unlearn_gym.checkpoints import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] ``(N, 1, H, W)`` -> uint8 ``(N, H, W)``."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x[:, 0].cpu().numpy()


def image_grid(images: torch.Tensor, nrow: int, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile ``(N, 1, H, W)`` images in [-1, 1] into a uint8 ``(rows*H, nrow*W, 3)`` RGB grid.

    :param images: the images, row-major (row ``i`` = images ``i*nrow .. i*nrow+nrow-1``).
    :param nrow: images per row.
    :param pad: pixels of grey between images.
    :param scale: integer upscaling (nearest) for legibility.
    """
    imgs = to_uint8(images)
    if scale > 1:
        imgs = imgs.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w = imgs.shape
    rows = (n + nrow - 1) // nrow
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), 128, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = imgs[i]
    return np.repeat(grid[:, :, None], 3, axis=2)


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write a uint8 RGB array as PNG, atomically (needs matplotlib: the ``eval`` extra)."""
    try:
        import matplotlib.image as mpimg
    except ImportError as e:
        raise ImportError("writing PNG files needs matplotlib: pip install 'unlearn-gym[eval]'") from e
    buf = io.BytesIO()
    mpimg.imsave(buf, rgb, format="png")
    atomic_write_bytes(path, buf.getvalue())
