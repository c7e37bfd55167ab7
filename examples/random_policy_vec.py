"""Vectorised environments: four micro envs stepping with random λ, gymnasium's sync vector env.

    python examples/random_policy_vec.py
"""

from __future__ import annotations

import gymnasium as gym

envs = gym.make_vec("unlearn_gym:SISSUnlearnMicro-v0", num_envs=4, vectorization_mode="sync", horizon=10)
obs, infos = envs.reset(seed=42)
for _ in range(10):
    obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    print("λ =", infos["lambda"].round(3), "reward =", rewards.round(4))
envs.close()
