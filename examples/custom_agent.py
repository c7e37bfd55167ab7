"""A policy-gradient agent from scratch in plain PyTorch, through the Gymnasium vector API only.

    python examples/custom_agent.py                                 # 6,000 steps per env (~7 min on one core)
    UNLEARN_GYM_EXAMPLE_STEPS=60 python examples/custom_agent.py    # short budget (CI)

It trains on one training instance and ends with ``unlearn_gym.evaluate_policy`` on the held-out
test split (``default:test``): the policy's outcome against the default constant, the best constant
and the best schedule, paired by seed.

The paper's policy (docs/method.md §3): a Gaussian on a latent u, squashed by a sigmoid, so each action
component is 2·sigmoid(u) - 1 in [-1, 1] (the env maps it affinely to [λ_min, λ_max] and to the
forget scale). REINFORCE with a learned value baseline; the Jacobian of the squash does not depend on
the policy's parameters, so the score function is that of u. No Stable-Baselines3 anywhere: any RL
code that speaks Gymnasium can drive the env.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import unlearn_gym  # registers the env ids

STEPS = int(os.environ.get("UNLEARN_GYM_EXAMPLE_STEPS", 6000))


@dataclass
class Settings:
    env_id: str = "SISSUnlearnMicro-v0"
    """Gymnasium id of the env."""
    instance: str = "micro-heavy-scale-b8-h30"
    """Benchmark instance (its reward: the outcome score at the episode's end)."""
    num_envs: int = 2
    """Envs stepped together by the sync vector env."""
    steps: int = STEPS
    """Steps per env (UNLEARN_GYM_EXAMPLE_STEPS gives a short budget)."""
    eval_seeds: int = 10 if STEPS >= 1000 else 1
    """Seeds per test instance of the final evaluation (100, 101, ...: the shipped baseline rows' seeds)."""
    episodes_per_update: int = 4
    """Finished episodes per gradient update."""
    lr: float = 3e-4
    """Adam learning rate (the paper's)."""
    gamma: float = 0.99
    """Discount."""
    ent_coef: float = 1e-3
    """Entropy bonus on the latent Gaussian."""
    seed: int = 0
    """Seed of the envs and the networks."""


def mlp(n_in: int, n_out: int) -> nn.Sequential:
    """Two hidden layers of 64 tanh units (the paper's policy and value networks)."""
    return nn.Sequential(nn.Linear(n_in, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, n_out))


class SquashedGaussian(nn.Module):
    """π(u | s) = N(μ(s), σ²) on the latent; the action is 2·sigmoid(u) - 1."""

    def __init__(self, n_obs: int, n_act: int):
        super().__init__()
        self.mu, self.log_std = mlp(n_obs, n_act), nn.Parameter(torch.zeros(n_act))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mu(obs), self.log_std.exp())

    @staticmethod
    def squash(u: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(u) - 1.0


def main(cfg: Settings) -> None:
    torch.manual_seed(cfg.seed)
    envs = gym.make_vec(cfg.env_id, num_envs=cfg.num_envs, vectorization_mode="sync", instance=cfg.instance,
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    n_obs, n_act = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    policy, value = SquashedGaussian(n_obs, n_act), mlp(n_obs, 1)
    opt = torch.optim.Adam([*policy.parameters(), *value.parameters()], lr=cfg.lr)
    running = [[] for _ in range(cfg.num_envs)]  # per env: (obs, u, reward) of the current episode
    finished, outcomes = [], []
    obs, _ = envs.reset(seed=cfg.seed)
    for _ in range(cfg.steps):
        with torch.no_grad():
            u = policy.dist(torch.as_tensor(obs)).sample()
        next_obs, reward, terminated, truncated, infos = envs.step(policy.squash(u).numpy())
        for i in range(cfg.num_envs):
            running[i].append((obs[i], u[i], float(reward[i])))
            if terminated[i] or truncated[i]:
                finished.append(running[i])
                running[i] = []
                outcomes.append(float(infos["final_info"]["outcome"]["outcome"][i]))  # batched dicts
        obs = next_obs
        if len(finished) >= cfg.episodes_per_update:
            update(policy, value, opt, finished, cfg)
            recent = np.mean(outcomes[-len(finished):])
            print(f"{len(outcomes)} episodes, mean outcome score of the last {len(finished)}: {recent:+.3f}")
            finished = []
    envs.close()

    # judged where it did not train: the held-out test instances, from θ_0, the deterministic policy
    # (u = μ), against the default constant, the best constant and the best schedule on the same seeds
    def deterministic(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.squash(policy.mu(torch.as_tensor(obs, dtype=torch.float32))).numpy()

    result = unlearn_gym.evaluate_policy(deterministic, "default:test", seeds=cfg.eval_seeds, name="REINFORCE")
    print(f"deterministic policy from θ_0 on default:test, seeds {result.seeds[0]}-{result.seeds[-1]} per instance:")
    print(result.to_markdown())


def update(policy: SquashedGaussian, value: nn.Module, opt: torch.optim.Optimizer, episodes: list, cfg: Settings):
    """One REINFORCE step with a value baseline on whole episodes."""
    obs, us, returns = [], [], []
    for ep in episodes:
        g, rets = 0.0, []
        for _, _, r in reversed(ep):
            g = r + cfg.gamma * g
            rets.append(g)
        obs += [o for o, _, _ in ep]
        us += [u for _, u, _ in ep]
        returns += rets[::-1]
    obs_t, u_t = torch.as_tensor(np.stack(obs)), torch.stack(us)
    ret = torch.as_tensor(returns, dtype=torch.float32)
    v = value(obs_t).squeeze(-1)
    adv = ret - v.detach()
    dist = policy.dist(obs_t)
    loss = -(dist.log_prob(u_t).sum(-1) * adv).mean() + 0.5 * ((ret - v) ** 2).mean()
    loss = loss - cfg.ent_coef * dist.entropy().sum(-1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


if __name__ == "__main__":
    main(Settings())
