"""Named size presets: one frozen dataclass per model/data scale.

A preset fixes everything that must agree between the data, the DDPM, the evaluator classifier and
the unlearning environment: the image resolution, the UNet widths and the default training and
unlearning hyperparameters. ``get_preset("tiny")`` is the CPU default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A model/data scale.

    :param name: registry key.
    :param resolution: side length of the square grey-scale images.
    :param channels: UNet widths, one per resolution level (the number of levels is ``len(channels)``).
    :param time_dim: width of the timestep / class embedding.
    :param pretrain_steps: default number of pretraining steps.
    :param pretrain_batch: pretraining mini-batch size.
    :param pretrain_lr: peak AdamW learning rate of pretraining (cosine decay, linear warm-up).
    :param ema_decay: EMA decay of the pretrained weights.
    :param classifier_channels: widths of the evaluator CNN's two convolution blocks.
    :param classifier_epochs: evaluator training epochs.
    :param unlearn_lr: AdamW learning rate of one unlearning step.
    :param unlearn_batch: unlearning mini-batch size (retain and forget each).
    :param unlearn_rule: default SISS update rule (see :mod:`unlearn_gym.objectives.siss`).
    :param unlearn_scale: constant of that rule (ρ for ``ratio``, c for ``rescale``/``clip``; c is a
        norm of the gradient of the pixel-sum loss, the SISS reference code's unit: 5 for MNIST there).
    :param erase_lr: learning rate for ``erase-<digit>`` tasks (calibrated: docs/headroom.md).
    :param erase_scale: ``unlearn_rule`` constant for ``erase-<digit>`` tasks.
    :param erase_batch: mini-batch size for ``erase-<digit>`` tasks.
    :param horizon: default episode length of the unlearning environment.
    :param note: one line on what the preset is for.
    """

    name: str
    resolution: int
    channels: tuple[int, ...]
    time_dim: int
    pretrain_steps: int
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    ema_decay: float = 0.999
    classifier_channels: tuple[int, int] = (32, 64)
    classifier_epochs: int = 15
    unlearn_lr: float = 5e-5
    unlearn_batch: int = 64
    unlearn_rule: str = "ratio"
    unlearn_scale: float = 0.1
    erase_lr: float = 1e-4
    erase_scale: float = 1.0
    erase_batch: int = 32
    horizon: int = 100
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dictionary (for sidecars and logs)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["classifier_channels"] = list(self.classifier_channels)
        return d


PRESETS: dict[str, Preset] = {
    "micro": Preset(
        name="micro",
        resolution=8,
        channels=(16, 32),
        time_dim=32,
        pretrain_steps=8000,
        pretrain_lr=2e-3,
        classifier_channels=(16, 32),
        classifier_epochs=10,
        unlearn_lr=5e-5,  # measured: benchmarks/env_unlearn.py --env SISSUnlearnMicro-v0
        unlearn_scale=0.5,
        erase_scale=0.5,  # measured: benchmarks/erase_calibration.py --preset micro (1.0 destroys it)
        horizon=50,
        note="8x8, tiny network: fast RL research and CI tests",
    ),
    "tiny": Preset(
        name="tiny",
        resolution=16,
        channels=(32, 64, 64),
        time_dim=64,
        pretrain_steps=15000,
        pretrain_lr=1e-3,
        unlearn_lr=5e-5,  # measured: benchmarks/env_unlearn.py --env SISSUnlearn-v0
        unlearn_scale=0.5,
        erase_scale=1.0,  # measured: benchmarks/erase_calibration.py --preset tiny (docs/headroom.md)
        horizon=100,
        note="16x16, ~0.6 M parameters: the CPU default",
    ),
    "mnist28": Preset(
        name="mnist28",
        resolution=28,
        channels=(64, 128, 128),
        time_dim=128,
        pretrain_steps=40000,
        pretrain_batch=128,
        pretrain_lr=5e-4,
        ema_decay=0.9995,
        horizon=300,
        note="28x28, paper scale: meant for a GPU",
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """Look up a preset by name (a :class:`Preset` is returned unchanged).

    :param name: one of ``micro``, ``tiny``, ``mnist28``.
    :raises ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {sorted(PRESETS)}"
        ) from None
