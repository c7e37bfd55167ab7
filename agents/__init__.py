"""Runnable RL-agent scripts of the unlearn-gym checkout (not installed with the package).

* ``python -m agents.train``: train a Stable-Baselines3 / sb3-contrib agent in either protocol
  (the same as ``unlearn-gym train-agent``).
* ``python -m agents.rllib_train``: RLlib PPO on a local or remote Ray cluster.

The training code they call is :mod:`unlearn_gym.rl`, and the hyperparameter files are
``unlearn_gym/rl/hyperparams/<algo>.yml`` (shipped with the package); see ``agents/README.md``.
"""
