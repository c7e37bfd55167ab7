"""Stable-Baselines3 callbacks for unlearn-gym: what the environment did, per step and per episode.

:class:`UnlearnLogCallback` reads each step's ``info`` (λ, the forget scale, the reward terms, L_r,
L_f, the gradient norms) and records the means over each logging interval under ``unlearn/`` in
SB3's logger (hence tensorboard); at every episode end it records the outcome score
(``info["outcome"]``) and the paper's return, and keeps them in :attr:`UnlearnLogCallback.episodes`
for the training curves. :class:`ProgressBar` is a tqdm bar (SB3's own needs ``rich``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

#: per-step ``info`` keys logged (means over a logging interval) and recorded in trajectories
STEP_KEYS = ("lambda", "scale", "loss", "L_r", "L_f", "L_x", "L_a", "grad_norm_r", "grad_norm_f", "grad_norm_x",
             "grad_norm_a", "total_grad_norm")


def step_row(info: dict[str, Any], reward: float) -> dict[str, float]:
    """One row of a trajectory log: step, λ, scale, losses, gradient norms, reward and its terms.

    :param info: the step's info.
    :param reward: the step's reward.
    """
    row: dict[str, float] = {"step": int(info["step"]), "global_step": int(info.get("global_step", info["step"]))}
    row.update({k: float(info[k]) for k in STEP_KEYS if k in info})
    row["reward"] = float(reward)
    row.update({f"reward_{k}": float(v) for k, v in info["reward_terms"].items()})
    row["paper_reward"] = float(info["paper_reward"])  # -L_SISS - β Δλ², whatever the env's reward
    row["diverged"] = float(bool(info.get("diverged", False)))
    return row


class UnlearnLogCallback(BaseCallback):
    """Log what the unlearning env did to SB3's logger (tensorboard) and keep the episode results.

    Per step (means over each logging interval): ``unlearn/lambda``, ``unlearn/scale`` (where the action
    sets it), ``unlearn/loss`` (L_SISS), ``unlearn/L_r``, ``unlearn/L_f``, ``unlearn/L_x``,
    ``unlearn/L_a``, the gradient norms and ``unlearn/reward_<term>`` for every reward term. Per
    episode end: ``unlearn/outcome`` (and its forget / retain parts) and ``unlearn/paper_return``.

    :param log_scale: log the forget scale (default: when the action has two components).
    :param record_trajectory: keep every step's row of env 0 in :attr:`trajectory` (the online protocol).
    :param verbose: SB3 verbosity.
    """

    def __init__(self, log_scale: bool | None = None, record_trajectory: bool = False, verbose: int = 0):
        super().__init__(verbose)
        self.log_scale = log_scale
        self.record_trajectory = record_trajectory
        self.episodes: list[dict[str, Any]] = []
        self.trajectory: list[dict[str, float]] = []
        self.last: dict[str, Any] = {}
        self._paper: np.ndarray = np.zeros(0)

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self._paper = np.zeros(n)
        if self.log_scale is None:
            self.log_scale = int(np.prod(self.training_env.action_space.shape)) >= 2

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        rewards = self.locals.get("rewards", np.zeros(len(infos)))
        for i, info in enumerate(infos):
            if "lambda" not in info or "reward_terms" not in info:
                continue
            row = step_row(info, float(rewards[i]))
            for key in STEP_KEYS:
                if key in row and math.isfinite(row[key]) and (key != "scale" or self.log_scale):
                    self.logger.record_mean(f"unlearn/{key}", row[key])
            for term in info["reward_terms"]:
                self.logger.record_mean(f"unlearn/reward_{term}", row[f"reward_{term}"])
            self._paper[i] += row["paper_reward"]
            if self.record_trajectory and i == 0:
                self.trajectory.append(row)
            self.last = {"lambda": row["lambda"], "scale": row.get("scale")}
            if dones[i]:
                self._episode_end(i, info)
        return True

    def _episode_end(self, i: int, info: dict[str, Any]) -> None:
        ep: dict[str, Any] = {"timesteps": int(self.num_timesteps), "env": i, "steps": int(info["step"]),
                              "paper_return": float(self._paper[i]), "diverged": bool(info.get("diverged", False))}
        self.logger.record_mean("unlearn/paper_return", ep["paper_return"])
        out = info.get("outcome")
        if out is not None:
            ep.update(outcome=float(out["outcome"]), forget=float(out["forget"]),
                      retain_mean=float(out["retain_mean"]), one_rate=float(out["one_rate"]))
            if out.get("instance"):
                ep["instance"] = out["instance"].get("name")
            for key in ("outcome", "forget", "retain_mean"):
                self.logger.record_mean(f"unlearn/{key}", ep[key])
            self.last["outcome"] = ep["outcome"]
        self.episodes.append(ep)
        self._paper[i] = 0.0


class ProgressBar(BaseCallback):
    """A tqdm progress bar over the training steps, showing the last λ and outcome score.

    :param log: the :class:`UnlearnLogCallback` of the run (for the bar's postfix), or ``None``.
    :param desc: the bar's label.
    """

    def __init__(self, log: UnlearnLogCallback | None = None, desc: str = "training"):
        super().__init__(0)
        self.log = log
        self.desc = desc
        self.bar: Any = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        total = int(self.locals["total_timesteps"]) - int(self.model.num_timesteps)
        self.bar = tqdm(total=total, desc=self.desc, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        last = self.log.last if self.log is not None else {}
        if last and self.n_calls % 10 == 0:
            post = {"λ": f"{last['lambda']:.2f}"}
            if last.get("outcome") is not None:
                post["outcome"] = f"{last['outcome']:+.3f}"
            self.bar.set_postfix(post, refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
