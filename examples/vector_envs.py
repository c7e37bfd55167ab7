"""Vectorised envs, two workers each: Gymnasium's `gym.make_vec` and Stable-Baselines3's `SubprocVecEnv`.

    python examples/vector_envs.py                                # one episode each, then PPO for 1,024 steps
    UNLEARN_GYM_EXAMPLE_STEPS=8 python examples/vector_envs.py    # short budget (CI)

Every env holds its own copy of the DDPM; worker processes run torch with one thread, so N workers
are meant for N cores. The `__main__` guard is needed: SubprocVecEnv starts its workers with
forkserver, which re-imports this file.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

import unlearn_gym  # noqa: F401  (registers the env ids)

ENV_ID, INSTANCE = "SISSUnlearnMicro-v0", "micro-heavy-scale-b8-h30"
STEPS = int(os.environ.get("UNLEARN_GYM_EXAMPLE_STEPS", 0))  # 0: the full demo


def gymnasium_vector(steps: int) -> None:
    """Two envs in two worker processes (``vectorization_mode="sync"`` keeps them in this process)."""
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", instance=INSTANCE)
    envs.action_space.seed(0)
    envs.reset(seed=0)
    for t in range(steps):
        _, rewards, _, _, infos = envs.step(envs.action_space.sample())
        if t % 10 == 0 or t == steps - 1:
            print(f"gym.make_vec step {t + 1}: λ = {np.round(infos['lambda'], 3)}, forget scale ="
                  f" {np.round(infos['scale'], 3)}, rewards = {np.round(rewards, 3)}")
    envs.close()


def sb3_subproc(steps: int) -> None:
    """PPO on two SubprocVecEnv workers (each step collects one transition from each)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs={"instance": INSTANCE}, vec_env_cls=SubprocVecEnv)
    n_steps = min(128, steps)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=n_steps, seed=0)
    model.learn(total_timesteps=2 * steps)
    print(f"PPO on SubprocVecEnv: {model.num_timesteps} transitions from 2 workers")
    venv.close()


if __name__ == "__main__":
    gymnasium_vector(STEPS or 30)
    sb3_subproc(STEPS or 512)
