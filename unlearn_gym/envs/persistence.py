"""Saving and resuming a running :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` (online runs)."""

from __future__ import annotations

import ast
import os

import numpy as np

from unlearn_gym.checkpoints import load_checkpoint, save_checkpoint

# constructor arguments that must agree for `load` to accept a saved online run
RUN_KEYS = ("preset", "task", "horizon", "lr", "rule", "scale", "batch_size", "lambda_min", "lambda_max",
            "action", "scale_range", "state", "reward", "beta", "s", "pairing", "x_from", "max_grad_norm",
            "weight_decay", "probe_size", "data_ratio", "data_seed", "max_train_digits", "model")
#: values of run keys added after files were first written (an older file holds a DDPM run)
RUN_KEY_DEFAULTS = {"model": "ddpm"}


class CheckpointMixin:
    """``save`` / ``load`` of the env's full state (θ, optimizer, RNGs, counters)."""

    def save(self, path: str | os.PathLike) -> None:
        """Checkpoint the running env (θ, optimizer, RNGs, counters) atomically.

        :param path: destination ``.pt`` file (a ``.json`` sidecar is written beside it).
        """
        if not self._seeded:
            raise RuntimeError("nothing to save: call reset() first")
        payload = {
            "config": {k: self.config[k] for k in RUN_KEYS},
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_generator": self._gen.get_state(),
            "np_random": repr(self.np_random.bit_generator.state),
            "counters": {"t": self._t, "global_step": self.global_step, "lam_prev": self._lam_prev,
                         "needs_restore": self._needs_restore, "last": list(self._last),
                         "retain_ema": self._retain_ema},
        }
        save_checkpoint(path, "env-state", self.config["preset"], payload,
                        {"env": "SISSUnlearnEnv", "config": self.config, "global_step": self.global_step})

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save` into this (identically configured) env.

        :param path: the ``.pt`` file.
        :raises ValueError: when the saved run was made with different settings.
        """
        ck = load_checkpoint(path, "env-state", self.config["preset"])
        mine = {k: self.config[k] for k in RUN_KEYS}
        saved = {k: ck["config"].get(k, RUN_KEY_DEFAULTS.get(k)) for k in RUN_KEYS}
        if saved != mine:
            diff = {k: (saved[k], mine[k]) for k in RUN_KEYS if saved[k] != mine[k]}
            raise ValueError(f"{path} was saved with other settings (saved, this env): {diff}")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self._gen.set_state(ck["torch_generator"])
        if self._np_random is None:
            self._np_random = np.random.default_rng()
        self.np_random.bit_generator.state = ast.literal_eval(ck["np_random"])
        cnt = ck["counters"]
        self._t, self.global_step, self._lam_prev = int(cnt["t"]), int(cnt["global_step"]), float(cnt["lam_prev"])
        self._needs_restore, self._last = bool(cnt["needs_restore"]), tuple(float(v) for v in cnt["last"])
        self._retain_ema = float(cnt["retain_ema"])
        self._seeded = True
