"""Strict checks of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` constructor arguments.

Every check raises ``ValueError`` naming the argument, its value and what is allowed.
"""

from __future__ import annotations

from typing import Any


def check_env_arguments(**kwargs: Any) -> None:
    """Validate the numeric constructor arguments of the env (``None`` means "use the default").

    :param kwargs: argument name -> value, as passed to the constructor.
    :raises ValueError: naming the first offending argument.
    """
