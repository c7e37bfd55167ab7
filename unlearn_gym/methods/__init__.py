"""Non-RL unlearning methods, one module per family, found by name in a registry.

``run("siss", preset="micro", task="trousers", steps=50, seed=0, lam=0.5)`` returns the unlearned
model and a per-step log. Built in: ``siss``, ``siss-no-is``, ``naive-deletion``, ``neggrad``,
``erasediff`` (:mod:`~unlearn_gym.methods.static`), ``adaptive-vi``
(:mod:`~unlearn_gym.methods.adaptive_vi`), ``sfd`` (:mod:`~unlearn_gym.methods.sfd`),
``sfd-align`` and ``sfd-align-adaptive`` (:mod:`~unlearn_gym.methods.score_alignment`) and
``hybrid`` (:mod:`~unlearn_gym.methods.hybrid`). A new method is one file with a
:func:`register_method` class (see :mod:`~unlearn_gym.methods.registry`). All of them use the
objectives and the update code of :mod:`unlearn_gym.objectives`, as the environment does.
"""

from unlearn_gym.methods import (  # noqa: F401  (registers the built-in methods)
    adaptive_vi,
    hybrid,
    score_alignment,
    sfd,
    static,
)
from unlearn_gym.methods.registry import (
    Method,
    available_methods,
    check_task,
    get_method,
    parse_assignments,
    parse_value,
    register_method,
    serves,
)
from unlearn_gym.methods.runner import RunResult, run
from unlearn_gym.methods.setup import SETUP_PARAMS, UnlearnSetup, build_setup

__all__ = [
    "SETUP_PARAMS",
    "Method",
    "RunResult",
    "UnlearnSetup",
    "available_methods",
    "build_setup",
    "check_task",
    "get_method",
    "parse_assignments",
    "parse_value",
    "register_method",
    "run",
    "serves",
]
