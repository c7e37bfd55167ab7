"""unlearn-gym: machine unlearning of diffusion models as a reinforcement-learning benchmark."""

__version__ = "0.1.0"

from unlearn_gym.envs import register_envs
from unlearn_gym.pretrained import load_classifier, load_pretrained

register_envs()  # gym.make("unlearn_gym:SISSUnlearn-v0") works without a prior import


def __getattr__(name: str):
    # lazy: ``import unlearn_gym`` stays light; policy evaluation imports the env stack when first used
    if name in ("evaluate_policy", "PolicyEvaluation"):
        from unlearn_gym import policy_eval

        return getattr(policy_eval, name)
    raise AttributeError(f"module 'unlearn_gym' has no attribute {name!r}")


__all__ = ["PolicyEvaluation", "__version__", "evaluate_policy", "load_classifier", "load_pretrained", "register_envs"]
