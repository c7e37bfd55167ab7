"""Exponential moving average of model weights (built on ``torch.optim.swa_utils``)."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (parameters and buffers); call ``ema.update_parameters(model)``.

    :param model: the model being trained.
    :param decay: EMA decay per update.
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
