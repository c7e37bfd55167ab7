"""RL agents for unlearn-gym: Stable-Baselines3 / sb3-contrib training in both protocols of the paper.

The reusable training core; the scripts users open and run are in the checkout's ``agents/`` folder
(``python -m agents.train``, ``python -m agents.rllib_train``), and ``unlearn-gym train-agent`` runs
the same :func:`~unlearn_gym.rl.train.train` from an installed package.

* :mod:`unlearn_gym.rl.train`: :class:`~unlearn_gym.rl.train.Args` (one ``--flag`` per field) and
  :func:`~unlearn_gym.rl.train.train` (train, final runs, saved and evaluated unlearned models).
* :mod:`unlearn_gym.rl.config`: rl-baselines3-zoo style hyperparameter files, shipped in
  ``unlearn_gym/rl/hyperparams/<algo>.yml``; ``--set`` values use :mod:`unlearn_gym.overrides`.
* :mod:`unlearn_gym.rl.callbacks`: SB3 callbacks logging λ, the reward terms, losses, gradient norms
  and the outcome score.
* :mod:`unlearn_gym.rl.evaluation`: deterministic runs of a trained policy, the unlearned model's files.

Importing this package (or :mod:`~unlearn_gym.rl.train`, :mod:`~unlearn_gym.rl.config`) imports
neither torch nor Stable-Baselines3; ``callbacks`` and ``evaluation`` need the ``sb3`` extra.
"""
