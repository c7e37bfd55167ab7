"""The class-conditional VAE (docs/method.md §6b): model, pretraining. Its SISS objective lives in
:mod:`unlearn_gym.objectives.vae`; the shipped weights load with
``unlearn_gym.load_pretrained(preset, model="cvae")``."""

from unlearn_gym.vae.model import CVAE_CONFIGS, ConditionalVAE, CVAEConfig, build_cvae, cvae_config
from unlearn_gym.vae.train import pretrain_cvae

__all__ = ["CVAE_CONFIGS", "CVAEConfig", "ConditionalVAE", "build_cvae", "cvae_config", "pretrain_cvae"]
