"""Static SISS and the SISS paper's baselines (docs/method.md §1) as runnable methods.

Every step is one call of an objective from :mod:`unlearn_gym.objectives` followed by
:func:`~unlearn_gym.objectives.apply_update` (the update code the environment uses):

* ``siss``: SISS with a fixed λ (``siss_terms``: one forward pass, importance weights).
* ``siss-no-is``: SISS (No IS), ``x_t`` and ``a_t`` with the same noise, no weights.
* ``naive-deletion``: fine-tune on the retain set only.
* ``neggrad``: ascend the forget data's denoising loss, ``-(1 + s) L_a``.
* ``erasediff``: retain loss plus a forget loss with a U[0, 1) target, combined by the
  ``erasediff`` rule ``g_x + max(η - <g_x, g_a>/||g_a||², 0) g_a``.

``rule``/``scale`` default to the preset's (``ratio``, ρ = 0.5 on ``micro`` and ``tiny``);
``rule="rescale", scale=5.0`` is the reference code's update with its constant meaning what it
means there (see :mod:`unlearn_gym.objectives.update`, "Units").
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from unlearn_gym.methods.registry import Method, register_method
from unlearn_gym.methods.setup import UnlearnSetup
from unlearn_gym.objectives import (
    GRAD_UNITS,
    apply_update,
    erasediff_terms,
    naive_deletion_terms,
    neggrad_terms,
    siss_step,
)


def check_lambda(lam: Any, name: str = "lam") -> float:
    """λ as a float in (0, 1), else a ``ValueError`` that says so.

    :param lam: the value.
    :param name: its parameter name (for the message).
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (math.isfinite(lam) and 0 < lam < 1):
        raise ValueError(f"{name} must be a number in (0, 1), got {lam!r}")
    return float(lam)


def check_nonnegative(value: Any, name: str) -> float:
    """``value`` as a finite float >= 0, else a ``ValueError``.

    :param value: the value.
    :param name: its parameter name.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_grad_units(units: Any) -> str | None:
    """``None``, ``"sum"`` or ``"mean"``, else a ``ValueError``.

    :param units: the value.
    """
    if units is not None and units not in GRAD_UNITS:
        raise ValueError(f"grad_units must be one of {GRAD_UNITS} or None (the rule's default), got {units!r}")
    return units


def resolve_rule(setup: UnlearnSetup, rule: str | None, scale: Any) -> tuple[str, float]:
    """The SISS update rule and its constant; ``None`` is the run's (task- and family-aware)
    default from :class:`~unlearn_gym.settings.RunSettings`, the env's default too.

    :param setup: the run's setup.
    :param rule: ``rescale``, ``ratio``, ``scale`` or ``clip`` (``None``: the run's).
    :param scale: the rule's constant (``None``: the run's when the rule is too, else an error).
    """
    if scale is not None:
        scale = check_nonnegative(scale, "scale")
    resolved = setup.settings.with_rule(rule, scale)
    return resolved.rule, resolved.scale


class _SISSRuleMethod(Method):
    """Shared parameter handling of the SISS methods: update rule, its constant, s, units."""

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.rule, self.scale = resolve_rule(setup, self.p["rule"], self.p["scale"])
        self.p.update(rule=self.rule, scale=self.scale)  # record the resolved values
        self.s = check_nonnegative(self.p["s"], "s")
        self.grad_units = check_grad_units(self.p["grad_units"])

    def _step(self, lam: float, importance_sampling: bool) -> dict[str, float]:
        su = self.setup
        upd = siss_step(
            su.model, su.optimizer, su.schedule, su.sampler.sample(su.generator), lam,
            rule=self.rule, scale=self.scale, s=self.s, generator=su.generator,
            max_grad_norm=su.max_grad_norm, importance_sampling=importance_sampling,
            grad_units=self.grad_units,
        )
        return upd.as_dict()


@register_method
class StaticSISS(_SISSRuleMethod):
    """SISS with a constant λ (the paper's method; the env with a constant action)."""

    name = "siss"
    summary = "SISS, constant λ: one forward pass, importance-weighted retain and forget terms"
    models = ("ddpm", "cvae")
    params: ClassVar[dict[str, Any]] = {"lam": 0.5, "rule": None, "scale": None, "s": 0.0, "grad_units": None}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.lam = check_lambda(self.p["lam"])

    def step(self, i: int) -> dict[str, float]:
        return {"lambda": self.lam, **self._step(self.lam, importance_sampling=True)}


@register_method
class SISSNoIS(_SISSRuleMethod):
    """SISS (No IS): both noisy samples, same noise and timestep, no importance weights."""

    name = "siss-no-is"
    summary = "SISS (No IS): x_t and a_t with shared noise, two targets, no weights (batch 2B)"
    models = ("ddpm", "cvae")
    params: ClassVar[dict[str, Any]] = {"rule": None, "scale": None, "s": 0.0, "grad_units": None}

    def step(self, i: int) -> dict[str, float]:
        return self._step(0.5, importance_sampling=False)  # λ is unused without importance sampling


@register_method
class NaiveDeletion(Method):
    """Fine-tune on the retain set X\\A only."""

    name = "naive-deletion"
    summary = "naive deletion: plain denoising loss on retain data only"
    models = ("ddpm", "cvae")
    params: ClassVar[dict[str, Any]] = {"grad_units": None}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.grad_units = check_grad_units(self.p["grad_units"])

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        x, y = su.sampler.sample_retain(su.generator)
        terms = naive_deletion_terms(su.model, su.schedule, x, y, generator=su.generator)
        upd = apply_update(su.model, su.optimizer, terms, "scale", 0.0, max_grad_norm=su.max_grad_norm,
                           grad_units=self.grad_units)
        return upd.as_dict()


@register_method
class NegGrad(Method):
    """Gradient ascent on the forget data's denoising loss."""

    name = "neggrad"
    summary = "NegGrad: ascend -(1+s) L_a on forget data only"
    params: ClassVar[dict[str, Any]] = {"s": 0.0, "grad_units": None}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.s = check_nonnegative(self.p["s"], "s")
        self.grad_units = check_grad_units(self.p["grad_units"])

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        a, y_a = su.sampler.sample_forget(su.generator)
        terms = neggrad_terms(su.model, su.schedule, a, y_a, s=self.s, generator=su.generator)
        upd = apply_update(su.model, su.optimizer, terms, "scale", self.s, max_grad_norm=su.max_grad_norm,
                           grad_units=self.grad_units)
        return upd.as_dict()


@register_method
class EraseDiff(Method):
    """EraseDiff: retain loss and a uniform-noise forget target, combined by the erasediff rule."""

    name = "erasediff"
    summary = "EraseDiff: forget target U[0,1) noise, g = g_x + max(η - <g_x,g_a>/||g_a||², 0) g_a"
    params: ClassVar[dict[str, Any]] = {"eta": 1.0, "grad_units": None}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.eta = check_nonnegative(self.p["eta"], "eta")
        self.grad_units = check_grad_units(self.p["grad_units"])

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        x, y_x = su.sampler.sample_retain(su.generator)
        a, y_a = su.sampler.sample_forget(su.generator)
        terms = erasediff_terms(su.model, su.schedule, x, y_x, a, y_a, generator=su.generator)
        upd = apply_update(su.model, su.optimizer, terms, "erasediff", self.eta,
                           max_grad_norm=su.max_grad_norm, grad_units=self.grad_units)
        return upd.as_dict()
