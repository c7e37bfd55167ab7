"""A small class-conditional UNet for ε-prediction."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from unlearn_gym.presets import Preset, get_preset


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, ``(B,) -> (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4) or 1, c)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block with an additive embedding."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ConditionalUNet(nn.Module):
    """Class-conditional UNet ``ε_θ(x_t, t, y)``.

    One residual block per level on the way down and on the way up, stride-2 convolutions to
    downsample, nearest-neighbour upsampling; the timestep and the class label enter as one summed
    embedding.

    :param resolution: image side (must be divisible by ``2 ** (len(channels) - 1)``).
    :param channels: widths per level.
    :param emb_dim: embedding width.
    :param num_classes: number of class labels.
    :param in_channels: image channels.
    """

    def __init__(
        self,
        resolution: int,
        channels: tuple[int, ...] = (32, 64, 64),
        emb_dim: int = 64,
        num_classes: int = 10,
        in_channels: int = 1,
    ):
        super().__init__()
        self.resolution, self.num_classes, self.emb_dim = resolution, num_classes, emb_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim * 2), nn.SiLU(), nn.Linear(emb_dim * 2, emb_dim)
        )
        self.class_emb = nn.Embedding(num_classes, emb_dim)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = channels[0]
        skips = []
        for i, ch in enumerate(channels):
            self.down.append(ResBlock(c, ch, emb_dim))
            c = ch
            skips.append(c)
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for ch in reversed(channels):
            self.up.append(ResBlock(c + skips.pop(), ch, emb_dim))
            c = ch
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``ε_θ(x_t, t, y)``; ``t`` and ``y`` may live on any device (they follow ``x``)."""
        t, y = t.to(x.device), y.to(x.device)
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim)) + self.class_emb(y)
        emb = F.silu(emb)
        h = self.stem(x)
        hs = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for block in self.up:
            skip = hs.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))


def build_unet(preset: str | Preset) -> ConditionalUNet:
    """The UNet of a preset, freshly initialised (uses the global torch RNG for init)."""
    p = get_preset(preset)
    return ConditionalUNet(p.resolution, p.channels, p.time_dim)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
