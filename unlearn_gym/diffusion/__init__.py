"""The DDPM: noise schedule, conditional UNet, EMA, samplers, pretraining."""

from unlearn_gym.diffusion.ema import ema_weights, make_ema
from unlearn_gym.diffusion.one_step import OneStepGenerator, is_one_step, one_step_images, sample_images
from unlearn_gym.diffusion.samplers import ddim_sample, ddpm_sample, sample
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.diffusion.train import export_ema, pretrain
from unlearn_gym.diffusion.unet import ConditionalUNet, build_unet, count_parameters

__all__ = [
    "ConditionalUNet",
    "NoiseSchedule",
    "OneStepGenerator",
    "build_unet",
    "count_parameters",
    "ddim_sample",
    "ddpm_sample",
    "ema_weights",
    "export_ema",
    "is_one_step",
    "make_ema",
    "one_step_images",
    "pretrain",
    "sample",
    "sample_images",
]
