"""Train a Stable-Baselines3 agent that chooses the SISS mixture weight λ.

One readable file in the CleanRL spirit: every setting is a field of :class:`Args` (with its
docstring), parsed from the command line. Examples::

    python agents/train.py --algo ppo --env-id unlearn_gym:SISSUnlearnMicro-v0 --total-timesteps 2000
    python agents/train.py --algo sac --n-envs 1 --total-timesteps 5000
    tensorboard --logdir runs/agents

The policy follows the seed paper (METHOD.md §3): a Gaussian on a latent squashed into
[λ_min, λ_max] (SB3 clips PPO's Gaussian to the action box; SAC squashes with tanh), policy and
value MLPs with two hidden layers of 64 tanh units, PPO with γ 0.99, GAE 0.95, clip 0.2, Adam 3e-4
and a small entropy bonus. After training, the script runs one deterministic unlearning episode
from θ_0 with the trained policy and with the constant λ = 0.5 baseline, and prints both returns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

ALGOS = ("ppo", "sac", "a2c", "recurrent-ppo", "tqc")


@dataclass
class Args:
    """Settings of one training run (each field is a ``--flag``)."""

    algo: str = "ppo"
    """RL algorithm: ppo, sac, a2c (stable-baselines3), recurrent-ppo, tqc (sb3-contrib)."""
    env_id: str = "unlearn_gym:SISSUnlearnMicro-v0"
    """Gymnasium id of the unlearning environment."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra constructor arguments, as JSON (e.g. '{"horizon": 30, "reward": "probe"}')."""
    total_timesteps: int = 2000
    """Environment steps (= DDPM updates) to train for, over all envs."""
    n_envs: int = 2
    """Parallel environments (each holds its own copy of the DDPM)."""
    vec_env: str = "dummy"
    """Vectorisation: dummy (one process) or subproc (one process per env)."""
    seed: int = 0
    """Seed of the agent and of the environments (env i gets seed + i)."""
    n_steps: int = 64
    """PPO / A2C rollout length per env before each update."""
    learning_rate: float = 3e-4
    """Adam learning rate of the agent."""
    ent_coef: float = 1e-3
    """Entropy bonus (PPO / A2C)."""
    eval_episodes: int = 1
    """Deterministic evaluation episodes at the end (policy and the λ = 0.5 baseline)."""
    log_dir: str = "runs/agents"
    """Tensorboard and model directory; the run lands in <log_dir>/<algo>-<seed>."""
    torch_threads: int = 1
    """Torch threads per process (1 avoids oversubscribing a small CPU)."""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = json.loads if f.name == "env_kwargs" else type(default)
        parser.add_argument(flag, type=kind, default=default)
    return Args(**vars(parser.parse_args()))


def make_model(args: Args, env):
    """The SB3 model for ``args.algo`` with the paper's network shape."""
    net = {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh}
    common = {"verbose": 0, "seed": args.seed, "tensorboard_log": args.log_dir, "learning_rate": args.learning_rate}
    if args.algo == "ppo":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", env, n_steps=args.n_steps, batch_size=args.n_steps, gamma=0.99, gae_lambda=0.95,
                   clip_range=0.2, ent_coef=args.ent_coef, policy_kwargs=net, **common)
    if args.algo == "a2c":
        from stable_baselines3 import A2C

        return A2C("MlpPolicy", env, n_steps=args.n_steps, ent_coef=args.ent_coef, policy_kwargs=net, **common)
    if args.algo == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO("MlpLstmPolicy", env, n_steps=args.n_steps, batch_size=args.n_steps,
                            ent_coef=args.ent_coef, **common)
    q_net = {"net_arch": [64, 64]}
    if args.algo == "sac":
        from stable_baselines3 import SAC

        return SAC("MlpPolicy", env, learning_starts=100, policy_kwargs=q_net, **common)
    if args.algo == "tqc":
        from sb3_contrib import TQC

        return TQC("MlpPolicy", env, learning_starts=100, policy_kwargs=q_net, **common)
    raise ValueError(f"unknown algo {args.algo!r}; choose one of {ALGOS}")


def run_episode(env: gym.Env, policy, seed: int) -> tuple[float, dict[str, Any]]:
    """One episode from θ_0; ``policy(obs) -> action``. Returns the return and the last info."""
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += float(reward)
        done = terminated or truncated
    return total, info


def main(args: Args) -> dict[str, float]:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    torch.set_num_threads(args.torch_threads)
    vec_cls = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}[args.vec_env]
    env = make_vec_env(args.env_id, n_envs=args.n_envs, seed=args.seed, env_kwargs=args.env_kwargs,
                       vec_env_cls=vec_cls)
    model = make_model(args, env)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps, tb_log_name=f"{args.algo}-{args.seed}", progress_bar=False)
    train_s = time.perf_counter() - t0
    env.close()
    out = Path(args.log_dir) / f"{args.algo}-{args.seed}.zip"
    model.save(out)

    eval_env = gym.make(args.env_id, **args.env_kwargs)
    zero = np.zeros(eval_env.action_space.shape, dtype=np.float32)
    results = {"train_seconds": round(train_s, 1)}
    agent, base = [], []
    for i in range(args.eval_episodes):
        agent.append(run_episode(eval_env, lambda o: model.predict(o, deterministic=True)[0], 10_000 + i)[0])
        base.append(run_episode(eval_env, lambda o: zero, 10_000 + i)[0])
    results.update(agent_return=float(np.mean(agent)), constant_half_return=float(np.mean(base)))
    eval_env.close()
    print(json.dumps({"model": str(out), **results}, indent=2))
    return results


if __name__ == "__main__":
    main(parse_args())
