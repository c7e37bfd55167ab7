"""The per-run state of an unlearning env, and where a run starts from.

:class:`RunState` is everything a step changes: θ (the model), the optimizer, the run's generator,
the counters, λ_prev, the last state quantities, the retain-loss EMA and the shaping potential φ.
:class:`Origin` is what a restore returns to (θ_0 and the constants measured there). A save is
``RunState.state_dict()``; a load is ``load_state_dict`` (:mod:`unlearn_gym.envs.persistence`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unlearn_gym.envs.encoding import STATE_KEYS


@dataclass(frozen=True)
class Origin:
    """θ_0 and the seed-independent quantities measured there (constants of an env).

    :param theta: θ_0, a detached copy of the model's state dict.
    :param quantities: the state quantities (:data:`~unlearn_gym.envs.encoding.STATE_KEYS`) at θ_0.
    :param retain_loss: θ_0's retain loss on fixed samples (the divergence reference).
    :param phi: the shaping potential Φ(θ_0) (0 without shaping).
    :param scale: the update rule's constant of the run (the forget scale before any action set one).
    """

    theta: dict[str, torch.Tensor]
    quantities: dict[str, float]
    retain_loss: float
    phi: float = 0.0
    scale: float = 0.0


@dataclass
class RunState:
    """Everything an unlearning step changes (one object: saved, restored and, later, stacked whole).

    :param model: the model being unlearned (θ lives in its parameters).
    :param optimizer: its AdamW optimizer.
    :param generator: the run's only torch random source (batches, noise, timesteps, draws).
    :param quantities: the last state quantities (:data:`~unlearn_gym.envs.encoding.STATE_KEYS`).
    :param retain_ema: running mean of the retain-loss estimate (divergence check).
    :param phi: the shaping potential of the current θ.
    :param lam_prev: the previous λ.
    :param scale_prev: the forget scale (the rule's constant) of the previous step.
    :param t: steps in the current episode (online: window).
    :param global_step: steps since the run started from θ_0.
    :param needs_restore: the next reset must restore θ_0 (a divergence happened).
    :param seeded: a reset has seeded the run (stepping is allowed).
    :param done: the episode (online: window) has ended; stepping needs a reset first.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    quantities: dict[str, float] = field(default_factory=dict)
    retain_ema: float = 0.0
    phi: float = 0.0
    lam_prev: float = 0.5
    scale_prev: float = 0.0
    t: int = 0
    global_step: int = 0
    needs_restore: bool = True
    seeded: bool = False
    done: bool = False

    def restore(self, origin: Origin) -> None:
        """Back to θ_0: weights, a fresh optimizer state, λ_prev 0.5, θ_0's quantities, EMA and φ.

        :param origin: where the run starts.
        """
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(origin.theta[k])
        self.optimizer.state.clear()
        self.quantities = dict(origin.quantities)
        self.retain_ema, self.phi, self.lam_prev, self.needs_restore = origin.retain_loss, origin.phi, 0.5, False
        self.scale_prev = origin.scale

    #: the plain-value fields (everything but model, optimizer and generator)
    SCALARS = ("quantities", "retain_ema", "phi", "lam_prev", "scale_prev", "t", "global_step", "needs_restore",
               "seeded", "done")

    def state_dict(self) -> dict[str, Any]:
        """The whole state (tensors and plain values) for :func:`torch.save`."""
        out: dict[str, Any] = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                               "generator": self.generator.get_state()}
        out.update({k: getattr(self, k) for k in self.SCALARS})
        out["quantities"] = dict(self.quantities)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output exactly.

        :param state: a saved state.
        :raises ValueError: a state missing a field, or whose quantities are not the env's.
        """
        missing = sorted({"model", "optimizer", "generator", *self.SCALARS} - set(state))
        if missing:
            raise ValueError(f"the saved run state lacks {missing}")
        if set(state["quantities"]) != set(STATE_KEYS):
            raise ValueError(f"saved state quantities {sorted(state['quantities'])} are not {list(STATE_KEYS)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.quantities = {k: float(state["quantities"][k]) for k in STATE_KEYS}
        self.retain_ema, self.phi = float(state["retain_ema"]), float(state["phi"])
        self.lam_prev, self.scale_prev = float(state["lam_prev"]), float(state["scale_prev"])
        self.t, self.global_step = int(state["t"]), int(state["global_step"])
        self.needs_restore, self.seeded, self.done = (bool(state["needs_restore"]), bool(state["seeded"]),
                                                      bool(state["done"]))
