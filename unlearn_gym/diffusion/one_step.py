"""A one-step generator built from an ε-prediction UNet (SFD / SiD, docs/method.md §4).

``x_g = x_in / sqrt(ᾱ_{t*}) - sqrt(1/ᾱ_{t*} - 1) ε_G(x_in, t*, c)`` with ``x_in = sqrt(1 - ᾱ_{t*}) z``
and ``z ~ N(0, I)``: the Tweedie x_0 prediction of the UNet at the fixed timestep ``t*`` (440),
fed with pure noise. :class:`OneStepGenerator` wraps the UNet so that the evaluation suite and
``unlearn-gym sample`` draw images from it in one forward pass instead of a DDIM chain: any model
with a ``generate(labels, noise)`` method is sampled that way (see :func:`is_one_step`).
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn_gym.device import model_device
from unlearn_gym.diffusion.samplers import sample
from unlearn_gym.diffusion.schedule import NoiseSchedule

#: the generator's fixed timestep of the SFD reference (t* = 440 of T = 1000)
T_STAR = 440


def one_step_images(
    net: nn.Module, schedule: NoiseSchedule, z: torch.Tensor, labels: torch.Tensor, t_star: int = T_STAR
) -> torch.Tensor:
    """``x_g`` of docs/method.md §4 (differentiable, not clamped): the UNet's x_0 prediction at ``t*``.

    :param net: ε-prediction network ``net(x_t, t, y)``.
    :param schedule: its noise schedule.
    :param z: standard normal latents ``(B, C, H, W)``.
    :param labels: class labels ``(B,)``.
    :param t_star: the generator's fixed timestep.
    """
    a = schedule.alpha_bar[t_star]
    x_in = (1.0 - a).sqrt() * z
    t = torch.full((len(labels),), int(t_star), dtype=torch.long, device=z.device)
    return x_in / a.sqrt() - (1.0 / a - 1.0).sqrt() * net(x_in, t, labels)


class OneStepGenerator(nn.Module):
    """Images in one forward pass: ``generate(labels, noise)`` (clamped to [-1, 1]).

    The state dict is the UNet's under ``net.``; ``pretrained.load_ddpm_file`` rebuilds the wrapper
    from an ``unlearned`` checkpoint whose ``extra`` holds ``one_step_generator``.

    :param net: the generator's ε-prediction UNet.
    :param t_star: its fixed timestep.
    :param schedule: noise schedule (default: the standard linear one).
    """

    sampler_name = "one-step"

    def __init__(self, net: nn.Module, t_star: int = T_STAR, schedule: NoiseSchedule | None = None):
        super().__init__()
        self.net = net
        self.schedule = schedule if schedule is not None else NoiseSchedule()
        if not 0 <= int(t_star) < self.schedule.num_steps:
            raise ValueError(f"t_star must be in [0, {self.schedule.num_steps - 1}], got {t_star}")
        self.t_star = int(t_star)
        self.resolution = getattr(net, "resolution", None)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Differentiable ``x_g`` (not clamped).

        :param noise: latents ``z`` ``(B, C, H, W)``.
        :param labels: class labels ``(B,)``.
        """
        return one_step_images(self.net, self.schedule, noise, labels, self.t_star)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, noise: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Samples in [-1, 1], one per label, from the given latents (no gradient).

        :param labels: int64 class labels.
        :param noise: latents, one per label (the same noise the DDIM reference starts from).
        :param batch_size: images per forward pass.
        :returns: CPU images (the generator runs on its own device).
        """
        if len(noise) != len(labels):
            raise ValueError(f"need one latent per label, got {len(noise)} latents for {len(labels)} labels")
        was_training = self.training
        self.eval()
        dev = model_device(self)
        out = [self(noise[i : i + batch_size].to(dev), labels[i : i + batch_size].to(dev)).clamp(-1, 1).cpu()
               for i in range(0, len(labels), batch_size)]
        self.train(was_training)
        return torch.cat(out)


def is_one_step(model: nn.Module) -> bool:
    """Whether ``model`` is sampled by its own ``generate(labels, noise)`` rather than by DDIM.

    True for SFD's one-step generator and for the VAE (prior samples,
    :class:`~unlearn_gym.vae.model.ConditionalVAE`).

    :param model: a DDPM, a one-step generator or a VAE.
    """
    return callable(getattr(model, "generate", None))


def sample_images(
    model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, noise: torch.Tensor, *, steps: int = 50
) -> torch.Tensor:
    """Images of ``model`` from fixed noise: its own ``generate(labels, noise)`` if it has one (a
    one-step generator, a VAE's prior), else DDIM with ``steps`` steps.

    :param model: a DDPM, a one-step generator or a VAE.
    :param schedule: the DDPM's noise schedule (unused by ``generate``).
    :param labels: one label per image.
    :param noise: image-shaped standard normal noise, one per label (common random numbers).
    :param steps: DDIM steps.
    :returns: CPU images in [-1, 1] (the model runs on its own device).
    """
    if is_one_step(model):
        return model.generate(labels, noise)
    return sample(model, schedule, labels, steps=steps, noise=noise)
