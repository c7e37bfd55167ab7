"""A Gymnasium ``VectorEnv`` as a Stable-Baselines3 ``VecEnv`` (SB3 does not take a ``VectorEnv``).

``python -m agents.train --vec-env batched --n-envs 16`` trains on the native
:class:`~unlearn_gym.envs.vector.SISSUnlearnVectorEnv` through :class:`VectorEnvAdapter`::

    venv = VectorEnvAdapter(gym.make_vec("unlearn_gym:SISSUnlearnVAE-v0", num_envs=16))

SB3's conventions are kept: a copy whose episode ends is reset in the same ``step_wait`` (the
returned observation is the reset's, the last one is ``info["terminal_observation"]``),
``info["TimeLimit.truncated"]`` marks a truncation, infos are one dict per copy and
``seed(s)`` seeds copy i with s + i at the next ``reset()``, as ``DummyVecEnv`` does: copy i
then plays the episodes ``DummyVecEnv``'s env i plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def split_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector infos (a dict of arrays with ``_key`` masks) as one dict per copy.

    :param infos: the vector env's info.
    :param n: number of copies.
    """
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
        parts = split_infos(value, n) if isinstance(value, dict) else None
        for i in range(n):
            if mask[i]:
                out[i][key] = parts[i] if parts is not None else _plain(value[i])
    return out


class VectorEnvAdapter(VecEnv):
    """SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` with NEXT_STEP autoreset and ``reset_mask`` resets.

    :param venv: the vector env (e.g. ``gym.make_vec(id, num_envs=N)``).
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> VecEnvObs:
        """Reset every copy (with the seeds of :meth:`seed`, if any)."""
        seeds = list(self._seeds) if any(s is not None for s in self._seeds) else None
        options = self._options[0] if self._options and self._options[0] else None
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every copy; reset the copies that finished (SB3's same-step reset)."""
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        per_copy = split_infos(infos, self.num_envs)
        if dones.any():
            for i in np.flatnonzero(dones):
                per_copy[i]["terminal_observation"] = obs[i].copy()
                per_copy[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            reset_obs, reset_infos = self.venv.reset(options={"reset_mask": dones})
            reset_per_copy = split_infos(reset_infos, self.num_envs)
            for i in np.flatnonzero(dones):
                obs[i] = reset_obs[i]
                self.reset_infos[i] = reset_per_copy[i]
        return obs, rewards.astype(np.float32), dones, per_copy

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()

    # the copies are not separate objects: attributes and methods are the vector env's
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per index (``render_mode`` is ``None``)."""
        value = getattr(self.venv.unwrapped, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the vector env (shared by every copy)."""
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of the vector env with the copy index first, once per index
        (``env_method("score")`` is every copy's outcome score)."""
        fn = getattr(self.venv.unwrapped, method_name)
        return [fn(i, *method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No copy is wrapped (wrap the adapter in ``VecMonitor`` for episode statistics)."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The native vector env does not render."""
        return [None for _ in range(self.num_envs)]
