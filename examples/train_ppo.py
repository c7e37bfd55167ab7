"""The shortest Stable-Baselines3 usage: PPO on a benchmark instance, then one deterministic run from θ_0.

    python examples/train_ppo.py                                 # 20,000 steps (~10 min on one core)
    UNLEARN_GYM_EXAMPLE_STEPS=64 python examples/train_ppo.py    # short budget (CI)

The instance's reward is the outcome score at the episode's end (forgetting that counts only while
the digits survive). `python -m agents.train --algo ppo ...` does the same with configs, logging,
checkpoints and the evaluation suite.
"""

from __future__ import annotations

import os

import gymnasium as gym
import torch
from stable_baselines3 import PPO

import unlearn_gym  # noqa: F401  (registers the env ids)

steps = int(os.environ.get("UNLEARN_GYM_EXAMPLE_STEPS", 20_000))
env = gym.make("SISSUnlearnMicro-v0", instance="micro-heavy-scale-b8-h30")
model = PPO("MlpPolicy", env, n_steps=min(256, steps), batch_size=64, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
            ent_coef=1e-3, policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh}, seed=0)
model.learn(total_timesteps=steps)

obs, info = env.reset(seed=0)  # the final unlearning run: θ_0, frozen deterministic policy
done = False
while not done:
    action, _ = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(action)
    done = terminated or truncated
out = info["outcome"]
print(f"PPO after {model.num_timesteps} steps: final run of {info['step']} updates, outcome score {out['outcome']:+.3f}"
      f" (trouser rate {out['reference']['forget']:.3f} -> {out['forget']:.3f}, digit accuracy"
      f" {out['reference']['retain_mean']:.3f} -> {out['retain_mean']:.3f}), last λ {info['lambda']:.3f},"
      f" forget scale {info['scale']:.3f}")
