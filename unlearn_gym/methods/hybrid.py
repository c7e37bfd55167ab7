"""Hybrid SISS + SFD (the seed's "unified objective", docs/method.md §4): ``hybrid``.

One loss, one update per step, built on the one SISS implementation:

    retain = SISS retain term (n/(n-k) w_x L_x)  +  β · L_distill  [+ α · L_align on erase-<d>]
    forget = SISS forget term (k/(n-k) w_a L_a)
    loss   = retain - (1 + s) · forget

* SISS (``siss_terms`` at a constant λ) unlearns the data: the forget set A (trousers labelled 1 on
  ``trousers``, the real images of digit d on ``erase-<d>``).
* SFD retain distillation ``L_distill = mean ||ε_θ(x_t, t, y) - ε_T(x_t, t, y)||²`` keeps the model
  on the frozen teacher (the pretrained EMA model) for the retain classes. The hybrid has data, so
  x_t comes from real retain images (X\\A) rather than from teacher samples: the teacher's own
  label-1 samples contain trousers, and distilling on them would teach the trousers back.
* On ``erase-<d>`` only, SFD score alignment ``L_align = mean ||ε_θ(x_t, t, c_f) - ε_T(x_t, t, c_o)||²``
  (override c_o as in ``sfd-align``), x_0 half the batch's forget images, half real images of c_o.

β (``distill_weight``, 1.0) and α (``align_weight``, 1.0) weigh pixel-mean squared ε errors, the
units of L_x. Both terms are descended, so they join the retain side of
:func:`~unlearn_gym.objectives.apply_update`: the SISS rule (``rule``/``scale``, the preset's
``ratio`` ρ 0.5 by default) rescales the ascended forget gradient against the whole retain-side
gradient, then the total norm is clipped. ``L_r`` in the log therefore includes β L_distill
(+ α L_align); ``L_x``, ``L_distill`` and ``L_align`` are logged separately.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from unlearn_gym.methods.registry import Method, register_method
from unlearn_gym.methods.score_alignment import (
    align_loss,
    distill_loss,
    forget_digit,
    frozen_copy,
    override_labels,
    resolve_override,
)
from unlearn_gym.methods.setup import UnlearnSetup
from unlearn_gym.methods.static import check_grad_units, check_lambda, check_nonnegative, resolve_rule
from unlearn_gym.objectives import Terms, apply_update, siss_terms


@register_method
class HybridSISSSFD(Method):
    """SISS for the data plus SFD retain distillation (and, on erase-<d>, score alignment)."""

    name = "hybrid"
    tasks = ("trousers", "erase-*")
    summary = "SISS (data) + β SFD retain distillation [+ α score alignment c_f -> c_o on erase-<d>], one loss"
    params: ClassVar[dict[str, Any]] = {
        "lam": 0.5, "rule": None, "scale": None, "s": 0.0, "grad_units": None,
        "distill_weight": 1.0, "align_weight": 0.1, "override": None,
    }

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        p = self.p
        self.lam = check_lambda(p["lam"])
        self.rule, self.scale = resolve_rule(setup, p["rule"], p["scale"])
        p.update(rule=self.rule, scale=self.scale)
        self.s = check_nonnegative(p["s"], "s")
        self.grad_units = check_grad_units(p["grad_units"])
        self.distill_weight = check_nonnegative(p["distill_weight"], "distill_weight")
        self.align_weight = check_nonnegative(p["align_weight"], "align_weight")
        self.teacher = frozen_copy(setup.model)
        self.erase = setup.task != "trousers"
        if self.erase:
            self.c_f = forget_digit(setup.task)
            self.c_o = resolve_override(self.c_f, p["override"])
            p["override"] = self.c_o
            images, labels = setup.sampler.retain_images, setup.sampler.retain_labels
            self.by_class = {int(c): images[labels == c] for c in labels.unique()}
        else:
            if p["override"] is not None:
                raise ValueError("override is the erase-<digit> tasks' target class; 'trousers' has no class to"
                                 " override (drop override=...)")
            p["align_weight"] = self.align_weight = 0.0  # no class to align on 'trousers'

    def _target_images(self, y_o: torch.Tensor) -> torch.Tensor:
        """One real retain image of each requested class."""
        gen = self.setup.generator
        out = []
        for c in y_o.tolist():
            pool = self.by_class[c]
            out.append(pool[int(torch.randint(0, len(pool), (1,), generator=gen))])
        return torch.stack(out)

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        batch = su.sampler.sample(su.generator)
        siss = siss_terms(su.model, su.schedule, batch, self.lam, s=self.s, generator=su.generator)
        retain = siss.retain
        stats = dict(siss.stats)
        if self.distill_weight > 0:
            x_r, y_r = su.sampler.sample_retain(su.generator)
            distill = distill_loss(su.model, self.teacher, su.schedule, x_r, y_r, generator=su.generator)
            retain = retain + self.distill_weight * distill
            stats["L_distill"] = distill.detach()
        if self.erase and self.align_weight > 0:
            b = batch.size
            half = b // 2
            y_o = override_labels(self.c_o, self.c_f, b, su.generator)
            x0 = torch.cat([batch.a[:half], self._target_images(y_o[half:])])
            align, _ = align_loss(su.model, self.teacher, su.schedule, x0, self.c_f, generator=su.generator,
                                  teacher_labels=y_o)
            retain = retain + self.align_weight * align
            stats["L_align"] = align.detach()
        terms = Terms(retain=retain, forget=siss.forget, loss=retain - (1.0 + self.s) * siss.forget,
                      retain_norm=siss.retain_norm, forget_norm=siss.forget_norm, forget_sign=-1.0,
                      stats=stats, loss_elements=siss.loss_elements)
        upd = apply_update(su.model, su.optimizer, terms, self.rule, self.scale, max_grad_norm=su.max_grad_norm,
                           grad_units=self.grad_units)
        return {"lambda": self.lam, **upd.as_dict()}
