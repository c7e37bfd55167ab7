"""Exponential moving average of model weights (built on ``torch.optim.swa_utils``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (parameters and buffers); call ``ema.update_parameters(model)``.

    :param model: the model being trained.
    :param decay: EMA decay per update.
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def ema_weights(averaged_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The plain model ``state_dict`` inside an ``AveragedModel.state_dict()``.

    :param averaged_state: state of the EMA wrapper (``module.``-prefixed keys, ``n_averaged``).
    """
    return {k.removeprefix("module."): v for k, v in averaged_state.items() if k != "n_averaged"}
