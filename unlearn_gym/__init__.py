"""unlearn-gym: machine unlearning of diffusion models as a reinforcement-learning benchmark."""

__version__ = "0.1.0"

from unlearn_gym.envs import register_envs
from unlearn_gym.pretrained import load_classifier, load_pretrained

register_envs()  # gym.make("unlearn_gym:SISSUnlearn-v0") works without a prior import

__all__ = ["__version__", "load_classifier", "load_pretrained", "register_envs"]
