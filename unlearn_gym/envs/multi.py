"""One env over several benchmark instances: every reset draws one (seeded), as DACBench does.

``gym.make(id, instances="default:train")`` (or a list of instance names) returns an
:class:`InstanceSetEnv`. It builds one :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` per
instance lazily (the first time it is drawn) and delegates to the drawn one until the next reset.
All instances must share the action space (all ``"lambda"`` or all ``"lambda+scale"``); the
observation space is the same for every instance. ``reset(options={"instance": NAME})`` picks an
instance explicitly (evaluation on every test instance in turn).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from unlearn_gym.envs.instances import instance_set_arguments
from unlearn_gym.envs.siss_env import SISSUnlearnEnv


class InstanceSetEnv(gym.Env[np.ndarray, np.ndarray]):
    """Draws one benchmark instance per reset from ``instances`` (uniformly, from ``np_random``).

    :param instances: ``"SET:SPLIT"``, ``"SET"`` (its train split) or a list of instance names.
    :param kwargs: further :class:`SISSUnlearnEnv` arguments shared by every instance (``mode``,
        ``beta``, ``outcome_config``, ...).
    """

    metadata: ClassVar[dict[str, Any]] = SISSUnlearnEnv.metadata

    def __init__(self, instances: str | list[str], **kwargs: Any):
        self.names, self._kwargs = instance_set_arguments(instances, kwargs)
        self._envs: dict[str, SISSUnlearnEnv] = {}
        self.render_mode = kwargs.get("render_mode")
        first = self._env(self.names[0])
        self.action_space, self.observation_space = first.action_space, first.observation_space
        self.current: SISSUnlearnEnv = first

    def _env(self, name: str) -> SISSUnlearnEnv:
        if name not in self._envs:
            self._envs[name] = SISSUnlearnEnv(instance=name, **self._kwargs)
        return self._envs[name]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw an instance (or take ``options["instance"]``) and reset it.

        :param seed: seeds this env's ``np_random`` (which draws the instance) and is passed to the
            instance's env unchanged (seed s on instance n plays the same episode as ``instance=n``
            with seed s); without a seed the instance's env gets one drawn from ``np_random``.
        :param options: ``{"instance": NAME}`` to choose the instance.
        """
        super().reset(seed=seed)
        name = (options or {}).get("instance")
        if name is None:
            name = self.names[int(self.np_random.integers(len(self.names)))]
        elif name not in self.names:
            raise ValueError(f"instance {name!r} is not in this env's instances {self.names}")
        self.current = self._env(name)
        # pairing: an explicit seed s reaches the instance's env unchanged, so seed s on instance n is
        # the episode `instance=n` plays with seed s; without one, a seed drawn from np_random
        sub_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        return self.current.reset(seed=sub_seed)

    def step(self, action):
        """Step the current instance's env.

        :param action: as for :class:`SISSUnlearnEnv`.
        """
        return self.current.step(action)

    def render(self) -> np.ndarray | None:
        """Render the current instance's model."""
        return self.current.render()

    @property
    def config(self) -> dict[str, Any]:
        """The current instance env's resolved config."""
        return self.current.config

    @property
    def horizon(self) -> int:
        """The current instance's horizon."""
        return self.current.horizon


def make_unlearn_env(**kwargs: Any) -> gym.Env:
    """Entry point of every registered id: :class:`InstanceSetEnv` when ``instances`` is given,
    else :class:`SISSUnlearnEnv`.

    :param kwargs: constructor arguments.
    """
    instances = kwargs.pop("instances", None)
    if instances is not None:
        return InstanceSetEnv(instances, **kwargs)
    return SISSUnlearnEnv(**kwargs)


make_unlearn_env.metadata = SISSUnlearnEnv.metadata  # type: ignore[attr-defined]
