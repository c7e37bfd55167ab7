"""The shortest SAC usage: SAC on a benchmark instance, then one deterministic run from θ_0.

    python examples/train_sac.py                                 # 20,000 steps
    UNLEARN_GYM_EXAMPLE_STEPS=64 python examples/train_sac.py    # short budget (CI)

SAC squashes its Gaussian with tanh into the action box; twin Q networks and a replay buffer, as
the paper's drop-in alternative to PPO.
"""

from __future__ import annotations

import os

import gymnasium as gym
import torch
from stable_baselines3 import SAC

import unlearn_gym  # noqa: F401  (registers the env ids)

steps = int(os.environ.get("UNLEARN_GYM_EXAMPLE_STEPS", 20_000))
env = gym.make("SISSUnlearnMicro-v0", instance="micro-heavy-scale-b8-h30")
model = SAC("MlpPolicy", env, learning_starts=min(300, steps // 2), gamma=0.99,
            policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh}, seed=0)
model.learn(total_timesteps=steps)

obs, info = env.reset(seed=0)
done = False
while not done:
    action, _ = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(action)
    done = terminated or truncated
print(f"SAC after {model.num_timesteps} steps: final run of {info['step']} updates, outcome score"
      f" {info['outcome']['outcome']:+.3f}, λ {info['lambda']:.3f}, forget scale {info['scale']:.3f}")
