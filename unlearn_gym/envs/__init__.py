"""Gymnasium environments: SISS unlearning as an MDP.

Importing :mod:`unlearn_gym` registers (plain-value kwargs, every constructor argument overridable
through ``gym.make(id, **kwargs)``):

* ``SISSUnlearn-v0``: ``tiny`` preset, episodic;
* ``SISSUnlearnOnline-v0``: ``tiny`` preset, online;
* ``SISSUnlearnMicro-v0``: ``micro`` preset, episodic;
* ``SISSUnlearnVAE-v0``: ``micro`` preset, episodic, the class-conditional VAE instead of the DDPM
  (``model="cvae"``; an env step costs a small fraction of a DDPM step: fast RL research).

Each id also has a ``vector_entry_point``: ``gym.make_vec(id, num_envs=N)`` returns the native
:class:`~unlearn_gym.envs.vector.SISSUnlearnVectorEnv` (data, θ_0, probe and scorer loaded once;
docs/vector.md); ``vectorization_mode="sync"`` or ``"async"`` gives gymnasium's wrappers of single envs.
"""

from __future__ import annotations

import os

import gymnasium as gym

ENTRY_POINT = "unlearn_gym.envs.multi:make_unlearn_env"
#: ``gym.make_vec(id, num_envs=N)`` (no mode, or ``"vector_entry_point"``) builds the native
#: :class:`~unlearn_gym.envs.vector.SISSUnlearnVectorEnv`; ``"sync"``/``"async"`` wrap single envs
VECTOR_ENTRY_POINT = "unlearn_gym.envs.vector:make_unlearn_vector_env"
ENV_IDS: dict[str, dict[str, str]] = {
    "SISSUnlearn-v0": {"preset": "tiny", "mode": "episodic"},
    "SISSUnlearnOnline-v0": {"preset": "tiny", "mode": "online"},
    "SISSUnlearnMicro-v0": {"preset": "micro", "mode": "episodic"},
    "SISSUnlearnVAE-v0": {"preset": "micro", "mode": "episodic", "model": "cvae"},
}


def _single_threaded_child() -> None:
    import torch

    torch.set_num_threads(1)


# A process forked after torch has used its OpenMP thread pool deadlocks at its first parallel
# op (seen with gymnasium's AsyncVectorEnv, whose default start method is fork on Linux). Forked
# children therefore run torch with one thread: N vectorised envs on N cores is the intended use.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_single_threaded_child)


def register_envs() -> None:
    """Register the environments (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                         kwargs=dict(kwargs))


def __getattr__(name: str):
    # lazy: importing the package must not import torch models before they are needed
    if name == "SISSUnlearnEnv":
        from unlearn_gym.envs.siss_env import SISSUnlearnEnv

        return SISSUnlearnEnv
    if name == "InstanceSetEnv":
        from unlearn_gym.envs.multi import InstanceSetEnv

        return InstanceSetEnv
    if name == "SISSUnlearnVectorEnv":
        from unlearn_gym.envs.vector import SISSUnlearnVectorEnv

        return SISSUnlearnVectorEnv
    raise AttributeError(name)


__all__ = ["ENV_IDS", "InstanceSetEnv", "SISSUnlearnEnv", "SISSUnlearnVectorEnv", "register_envs"]
