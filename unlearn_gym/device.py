"""Where tensors live: the package's one device convention.

* A model and everything that meets it in a forward pass (data batches, noise, timesteps, labels,
  the env's probe batch) live on the model's device: the ``device=`` argument of the environment,
  :func:`~unlearn_gym.methods.build_setup`, :func:`~unlearn_gym.diffusion.train.fit` and
  :func:`~unlearn_gym.pretrained.load_pretrained` (default: the CPU).
* Every random number is drawn **on the CPU** from the run's seeded CPU ``torch.Generator`` and then
  moved (:func:`randn`, :func:`rand`, :func:`randint`). A run therefore consumes the same random
  stream on any device; only floating-point arithmetic differs between a CPU and a GPU run.
* Images handed back to a caller (``sample_images``, a VAE's ``generate``) are CPU tensors, and
  scoring (the evaluator classifier, torchmetrics) runs on the CPU; checkpoints are written from CPU
  copies and load onto any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DeviceLike = str | torch.device | None

_INSTALL_HINT = (
    "install a torch build for that accelerator (e.g. `pip install torch --index-url "
    "https://download.pytorch.org/whl/cu124` for CUDA 12.4; this package's Makefile takes "
    "TORCH_SPEC=...), or pass device='cpu' (or 'auto': the accelerator if there is one, else the CPU)"
)


def resolve_device(device: DeviceLike) -> torch.device:
    """The ``torch.device`` a ``device=`` argument names, checked to exist.

    :param device: ``None`` or ``"cpu"`` (the CPU), ``"auto"`` (CUDA if available, else the CPU),
        ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.
    :raises ValueError: an unknown name, or an accelerator this torch build or machine does not have
        (the message says what to do).
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'auto', 'cuda', 'cuda:N' or 'mps'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested, but torch.cuda.is_available() is False"
                             f" (torch {torch.__version__}): {_INSTALL_HINT}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} requested, but only {torch.cuda.device_count()}"
                             " CUDA device(s) are visible (check CUDA_VISIBLE_DEVICES)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {str(device)!r} requested, but MPS is not available: {_INSTALL_HINT}")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {str(device)!r}: use 'cpu', 'auto', 'cuda', 'cuda:N' or 'mps'")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without parameters).

    :param model: any module.
    """
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | None = None) -> torch.Tensor:
    """Standard normals drawn on the CPU from ``generator``, then moved to ``device``.

    :param shape: output shape.
    :param generator: a CPU generator (``None``: torch's global CPU RNG).
    :param device: where the result lives (default: the CPU).
    """
    out = torch.randn(tuple(shape), generator=generator)
    return out if device is None else out.to(device)


def rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | None = None) -> torch.Tensor:
    """Uniforms on [0, 1) drawn on the CPU from ``generator``, then moved to ``device``.

    :param shape: output shape.
    :param generator: a CPU generator.
    :param device: where the result lives (default: the CPU).
    """
    out = torch.rand(tuple(shape), generator=generator)
    return out if device is None else out.to(device)


def randint(low: int, high: int, shape: Sequence[int], generator: torch.Generator | None,
            device: torch.device | None = None) -> torch.Tensor:
    """Integers uniform on ``[low, high)`` drawn on the CPU from ``generator``, then moved.

    :param low: smallest value.
    :param high: one past the largest value.
    :param shape: output shape.
    :param generator: a CPU generator.
    :param device: where the result lives (default: the CPU).
    """
    out = torch.randint(low, high, tuple(shape), generator=generator)
    return out if device is None else out.to(device)
