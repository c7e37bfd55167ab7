"""The class-conditional VAE (docs/method.md §6b): an MLP encoder q(h | x, y) and decoder p(x | h, y).

Both halves see the label as a one-hot vector concatenated to their input. The decoder ends in
``tanh``, so a reconstruction lives in the images' [-1, 1] range. Sizes per preset
(:data:`CVAE_CONFIGS`):

=========  ==========  ======  ===========  ============
preset     resolution  latent  hidden       parameters
=========  ==========  ======  ===========  ============
``micro``  8x8         8       2 x 128      55 k
``tiny``   16x16       16      2 x 256      281 k
=========  ==========  ======  ===========  ============

Prior sampling (:meth:`ConditionalVAE.generate`) decodes ``h ~ N(0, I)``. It takes the same
image-shaped standard normal noise the DDIM samplers start from and uses its first ``latent_dim``
entries as ``h``, so the evaluation suite, the outcome score and ``render`` give the VAE fixed noise
(common random numbers) exactly as they give it to a DDPM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from unlearn_gym.device import model_device
from unlearn_gym.presets import Preset, get_preset

NUM_CLASSES = 10


@dataclass(frozen=True)
class CVAEConfig:
    """Architecture and pretraining defaults of the VAE of one preset.

    :param latent_dim: size of the latent ``h``.
    :param hidden: width of the two hidden layers of the encoder and of the decoder.
    :param pretrain_steps: default pretraining steps.
    :param pretrain_batch: pretraining mini-batch size.
    :param pretrain_lr: peak AdamW learning rate (linear warm-up, cosine decay).
    :param ema_decay: EMA decay of the shipped weights.
    :param unlearn_lr: AdamW learning rate of one unlearning step (env and methods default).
    :param unlearn_scale: ρ of the ``ratio`` rule (the forget gradient is rescaled to ``ρ ||g_x||``).
        docs/method.md §6b names 0.1; measured on ``micro`` (docs/vae.md) 50 steps at ρ 0.1 and lr 1e-3
        leave most trousers (0.114 -> 0.088), ρ 0.3-0.5 remove them with every digit kept.
    """

    latent_dim: int
    hidden: int = 256
    pretrain_steps: int = 6000
    pretrain_batch: int = 128
    pretrain_lr: float = 2e-3
    ema_decay: float = 0.999
    unlearn_lr: float = 1e-3
    unlearn_scale: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dictionary (for sidecars)."""
        return asdict(self)


CVAE_CONFIGS: dict[str, CVAEConfig] = {
    "micro": CVAEConfig(latent_dim=8, hidden=128),
    "tiny": CVAEConfig(latent_dim=16, pretrain_steps=10000),
    "mnist28": CVAEConfig(latent_dim=32, hidden=512, pretrain_steps=30000),
}


def cvae_config(preset: str | Preset) -> CVAEConfig:
    """The VAE settings of a preset.

    :param preset: preset name or object.
    :raises ValueError: a preset without a VAE configuration.
    """
    p = get_preset(preset)
    if p.name not in CVAE_CONFIGS:
        raise ValueError(f"no VAE configuration for preset {p.name!r}; known: {sorted(CVAE_CONFIGS)}")
    return CVAE_CONFIGS[p.name]


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, d_out))


class ConditionalVAE(nn.Module):
    """Class-conditional VAE on ``(B, 1, r, r)`` images in [-1, 1].

    :param resolution: image side ``r``.
    :param latent_dim: latent size (at most ``r * r``, see :meth:`generate`).
    :param hidden: width of the hidden layers.
    :param num_classes: number of labels.
    """

    #: how the evaluation code samples it (see ``unlearn_gym.diffusion.one_step.is_one_step``)
    sampler_name = "vae-prior"

    def __init__(self, resolution: int, latent_dim: int, hidden: int = 256, num_classes: int = NUM_CLASSES):
        super().__init__()
        d = resolution * resolution
        if not 1 <= latent_dim <= d:
            raise ValueError(f"latent_dim must be in [1, {d}] (the pixels of one image), got {latent_dim}")
        self.resolution, self.latent_dim, self.num_classes = int(resolution), int(latent_dim), int(num_classes)
        self.encoder = _mlp(d + num_classes, hidden, 2 * latent_dim)
        self.decoder = _mlp(latent_dim + num_classes, hidden, d)

    def _onehot(self, y: torch.Tensor) -> torch.Tensor:
        y = y.to(model_device(self))  # labels follow the model
        # == against arange, not F.one_hot: the same 0/1 values, and it runs under torch.func.vmap
        return (y.unsqueeze(-1) == torch.arange(self.num_classes, device=y.device)).float()

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)`` of q(h | x, y), each ``(B, latent_dim)``.

        :param x: images ``(B, 1, r, r)``.
        :param y: labels ``(B,)``.
        """
        mu, logvar = self.encoder(torch.cat([x.flatten(1), self._onehot(y)], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's image for latents ``h`` ``(B, latent_dim)`` and labels ``y``, in [-1, 1].

        :param h: latents.
        :param y: labels.
        """
        out = torch.tanh(self.decoder(torch.cat([h, self._onehot(y)], 1)))
        return out.view(-1, 1, self.resolution, self.resolution)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, xi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction through a reparameterised latent ``h = μ + σ ξ``.

        :param x: encoder input ``(B, 1, r, r)``.
        :param y: labels ``(B,)``.
        :param xi: standard normal ``(B, latent_dim)`` (explicit, so callers control randomness).
        :returns: ``(reconstruction, μ, log σ²)``.
        """
        mu, logvar = self.encode(x, y)
        h = mu + (0.5 * logvar).exp() * xi
        return self.decode(h, y), mu, logvar

    def prior_latents(self, noise: torch.Tensor) -> torch.Tensor:
        """Latents from image-shaped standard normal noise: its first ``latent_dim`` entries.

        :param noise: ``(N, 1, r, r)`` (as the DDIM samplers take) or ``(N, latent_dim)``.
        """
        flat = noise.flatten(1)
        if flat.shape[1] < self.latent_dim:
            raise ValueError(f"noise has {flat.shape[1]} entries per sample, the latent needs {self.latent_dim}")
        return flat[:, : self.latent_dim]

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, noise: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Prior samples, one per label: ``decode(h, y)`` with ``h`` from ``noise`` (no gradient).

        :param labels: int64 labels.
        :param noise: one standard normal noise tensor per label (see :meth:`prior_latents`).
        :param batch_size: images per decoder pass.
        :returns: CPU images (the decoder runs on the model's device).
        """
        if len(noise) != len(labels):
            raise ValueError(f"need one noise tensor per label, got {len(noise)} for {len(labels)} labels")
        dev = model_device(self)
        h = self.prior_latents(noise)
        return torch.cat([self.decode(h[i : i + batch_size].to(dev), labels[i : i + batch_size].to(dev)).cpu()
                          for i in range(0, len(labels), batch_size)]).clamp(-1, 1)


def build_cvae(preset: str | Preset) -> ConditionalVAE:
    """The VAE of a preset (fresh weights from the global RNG; seed it with ``seeded_global_rng``).

    :param preset: preset name or object.
    """
    p = get_preset(preset)
    c = cvae_config(p)
    return ConditionalVAE(p.resolution, c.latent_dim, c.hidden)
