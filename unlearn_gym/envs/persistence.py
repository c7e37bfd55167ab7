"""Saving and resuming a running :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` (online runs).

A save holds the env's whole :class:`~unlearn_gym.envs.state.RunState` (θ, optimizer, generator,
counters, λ_prev, state quantities, retain EMA, shaping potential φ), its ``np_random`` state and
the settings a resumed run must share (:meth:`~unlearn_gym.envs.settings.EnvSettings.resume_keys`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
from typing import Any

import numpy as np

from unlearn_gym.checkpoints import load_checkpoint, save_checkpoint
from unlearn_gym.envs.encoding import STATE_KEYS
from unlearn_gym.envs.settings import EnvSettings

#: payload layout: 2 = the whole RunState (1, before it, lacked φ and compared fewer settings)
LAYOUT = 2


def _defaults() -> dict[str, Any]:
    """Each resume key's default (what a file written before the key existed ran with)."""
    out = {}
    for f in dataclasses.fields(EnvSettings):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    out["model"] = "ddpm"
    out["outcome_config"] = dataclasses.asdict(out["outcome_config"])
    return out


def _state_v1(ck: dict[str, Any], scale: float) -> dict[str, Any]:
    """A format-1 payload as a :meth:`RunState.state_dict` (φ was not saved: an unshaped run's 0;
    nor were the gradients' cosine and the last forget scale: 0 and the run's constant)."""
    cnt = ck["counters"]
    return {"model": ck["model"], "optimizer": ck["optimizer"], "generator": ck["torch_generator"],
            "quantities": dict(zip(STATE_KEYS, [*cnt["last"], 0.0])), "scale_prev": scale,
            "retain_ema": cnt["retain_ema"], "phi": 0.0,
            "lam_prev": cnt["lam_prev"], "t": cnt["t"], "global_step": cnt["global_step"],
            "needs_restore": cnt["needs_restore"], "seeded": True,
            "done": False}


class CheckpointMixin:
    """``save`` / ``load`` of the env's full state (its :class:`RunState` and ``np_random``)."""

    def _resume_config(self) -> dict[str, Any]:
        d = self.settings.to_dict()
        return {k: d[k] for k in EnvSettings.resume_keys()}

    def save(self, path: str | os.PathLike) -> None:
        """Checkpoint the running env atomically.

        :param path: destination ``.pt`` file (a ``.json`` sidecar is written beside it).
        """
        if not self.state.seeded:
            raise RuntimeError("nothing to save: call reset() first")
        # the state's fields at the top level: "model" is where every model loader looks
        payload = {"layout": LAYOUT, "config": self._resume_config(), **self.state.state_dict(),
                   "np_random": repr(self.np_random.bit_generator.state)}
        save_checkpoint(path, "env-state", self.settings.preset.name, payload,
                        {"env": "SISSUnlearnEnv", "config": self.config, "global_step": self.state.global_step})

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save` into this (identically configured) env.

        :param path: the ``.pt`` file.
        :raises ValueError: when the saved run was made with different settings.
        """
        ck = load_checkpoint(path, "env-state", self.settings.preset.name)
        mine = self._resume_config()
        defaults = _defaults()
        saved = {k: ck["config"].get(k, defaults.get(k)) for k in mine}
        if "scale_range" in saved and saved["scale_range"] is not None:
            saved["scale_range"] = tuple(saved["scale_range"])
        if saved != mine:
            diff = {k: (saved[k], mine[k]) for k in mine if saved[k] != mine[k]}
            raise ValueError(f"{path} was saved with other settings (saved, this env): {diff}")
        self.state.load_state_dict(ck if ck.get("layout", 1) >= 2 else _state_v1(ck, self.settings.scale))
        if self._np_random is None:
            self._np_random = np.random.default_rng()
        self.np_random.bit_generator.state = ast.literal_eval(ck["np_random"])
