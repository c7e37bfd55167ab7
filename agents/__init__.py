"""RL agents for unlearn-gym: Stable-Baselines3 / sb3-contrib training in both protocols of the paper.

* :mod:`agents.train`: the training script (``python -m agents.train``, ``unlearn-gym train-agent``).
* :mod:`agents.config`: rl-baselines3-zoo style hyperparameter files (``agents/hyperparams/*.yml``).
* :mod:`agents.callbacks`: SB3 callbacks logging λ, the reward terms, losses, gradient norms and the
  outcome score.
* :mod:`agents.evaluation`: deterministic runs of a trained policy, the unlearned model's files.

Importing this package imports neither torch nor Stable-Baselines3.
"""
