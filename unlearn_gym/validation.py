"""Strict checks of run and env arguments (:mod:`unlearn_gym.settings`, the unlearning env).

Every check raises ``ValueError`` naming the argument, its value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

#: Arguments that must be integers >= 1, with what they mean (for the error message).
POSITIVE_INTEGERS: dict[str, str] = {
    "horizon": "steps per episode",
    "batch_size": "pairs per step",
    "probe_size": "pairs in the probe batch",
    "render_cols": "samples per label row of the rendered grid",
    "render_steps": "DDIM steps of the rendered samples",
    "max_train_digits": "cap on training digits",
}

#: Real-valued arguments: name -> (test the value must pass, what is allowed).
REAL_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "beta": (lambda v: math.isfinite(v) and v >= 0.0, "a finite number >= 0 (0 disables the smoothness penalty)"),
    "s": (lambda v: math.isfinite(v) and v >= 0.0, "a finite number >= 0 (the reward's forget scale)"),
    "reward_clip": (lambda v: v > 0.0, "a number > 0 (inf: no clipping); a negative bound would flip the reward"),
    "divergence_factor": (lambda v: v > 1.0, "a number > 1 (a multiple of the initial retain loss; inf: never)"),
    "max_grad_norm": (lambda v: v > 0.0, "a number > 0 (inf: no gradient clipping)"),
    "lr": (lambda v: math.isfinite(v) and v > 0.0, "a finite number > 0"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0.0, "a finite number >= 0"),
}


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_integer(name: str, value: Any) -> None:
    """Raise unless ``value`` is ``None`` or an integer >= 1.

    :param name: the argument's name (for the message).
    :param value: its value.
    :raises ValueError: naming the argument, its value and what is allowed.
    """
    if value is None:
        return
    if not _is_integer(value) or value < 1:
        meaning = POSITIVE_INTEGERS.get(name, "")
        raise ValueError(f"{name} must be an integer >= 1 ({meaning}; None for the default),"
                         f" got {value!r} ({type(value).__name__})")


def check_real(name: str, value: Any) -> None:
    """Raise unless ``value`` is ``None`` or a real number passing ``REAL_RULES[name]``.

    :param name: a key of :data:`REAL_RULES`.
    :param value: its value.
    :raises ValueError: naming the argument, its value and what is allowed.
    """
    if value is None:
        return
    test, allowed = REAL_RULES[name]
    if not _is_real(value) or not test(float(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")


def check_env_arguments(**kwargs: Any) -> None:
    """Validate the numeric constructor arguments of the env (``None`` means "use the default").

    Integers (``horizon``, ``batch_size``, ``probe_size``, ``render_cols``, ``render_steps``,
    ``max_train_digits``) must be ``>= 1``; booleans and floats are refused. Real numbers: ``beta``,
    ``s``, ``lr``, ``weight_decay`` finite (``lr > 0``, the others ``>= 0``); ``reward_clip > 0``,
    ``max_grad_norm > 0`` and ``divergence_factor > 1`` (``inf`` allowed: no clipping / never).
    NaN fails every check.

    :param kwargs: argument name -> value, as passed to the constructor.
    :raises ValueError: naming the first offending argument.
    :raises TypeError: for a name without a rule here (a programming error: add one).
    """
    for name, value in kwargs.items():
        if name in POSITIVE_INTEGERS:
            check_positive_integer(name, value)
        elif name in REAL_RULES:
            check_real(name, value)
        else:
            raise TypeError(f"check_env_arguments: no rule for {name!r}; add it to"
                            " POSITIVE_INTEGERS or REAL_RULES in unlearn_gym/validation.py")
