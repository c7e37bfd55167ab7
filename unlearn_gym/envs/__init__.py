"""Gymnasium environments: SISS unlearning as an MDP.

Importing :mod:`unlearn_gym` registers (plain-value kwargs, every constructor argument overridable
through ``gym.make(id, **kwargs)``):

* ``SISSUnlearn-v0``: ``tiny`` preset, episodic;
* ``SISSUnlearnOnline-v0``: ``tiny`` preset, online;
* ``SISSUnlearnMicro-v0``: ``micro`` preset, episodic.
"""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "unlearn_gym.envs.siss_env:SISSUnlearnEnv"
ENV_IDS: dict[str, dict[str, str]] = {
    "SISSUnlearn-v0": {"preset": "tiny", "mode": "episodic"},
    "SISSUnlearnOnline-v0": {"preset": "tiny", "mode": "online"},
    "SISSUnlearnMicro-v0": {"preset": "micro", "mode": "episodic"},
}


def register_envs() -> None:
    """Register the environments (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs))


def __getattr__(name: str):
    # lazy: importing the package must not import torch models before they are needed
    if name == "SISSUnlearnEnv":
        from unlearn_gym.envs.siss_env import SISSUnlearnEnv

        return SISSUnlearnEnv
    raise AttributeError(name)


__all__ = ["ENV_IDS", "SISSUnlearnEnv", "register_envs"]
