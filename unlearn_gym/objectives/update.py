"""Update rules: how the retain and forget gradients of a :class:`Terms` become one optimizer step.

``apply_update`` back-propagates the two terms separately (two backward passes through one shared
forward graph), combines the gradients by a rule, clips the total norm and steps the optimizer.
It returns every number a caller might log (:class:`UpdateResult`), so nobody recomputes.

Rules (``g_x``, ``g_a``: gradients of the retain and forget terms; ``d = forget_sign · g_a``):

=============  ==========================================================  ===================
rule           combined gradient                                           its constant
=============  ==========================================================  ===================
``rescale``    ``g_x + (c / ||g_a||) d`` (SISS reference code)              c (MNIST: 5)
``ratio``      ``g_x + (ρ ||g_x|| / ||g_a||) d`` (transfers across sizes)   ρ (about 0.1)
``scale``      ``g_x + (1 + s) d``                                          s >= 0
``clip``       ``g_x + min(1, c / ||g_a||) d``                              c
``erasediff``  ``g_x + max(η - <g_x, d>/||d||², 0) d``                      η
=============  ==========================================================  ===================

then the total gradient norm is clipped to ``max_grad_norm`` (1.0 in the reference code).

Units (``grad_units``). The objectives average the squared ε error over the ``D = C·H·W`` pixels
and weight the two terms by the paper's coefficients (``n/(n-k)``, ``k/(n-k)``); the SISS reference
code sums the error over pixels, averages over the batch and uses no coefficients, so its gradients
are ``D·g_x/retain_norm`` and ``D·g_a/forget_norm``. A constant that is an absolute gradient norm
(c of ``rescale`` and ``clip``, and the total-norm clip) therefore means something else in each
convention: c = 5 applied to our gradients acts ``D`` times stronger relative to ``g_x`` (64x on
``micro``, 256x on ``tiny``), and ``clip`` would compare c with a forget gradient ``k/(n-k)``
times smaller than the reference's.

* ``"sum"``: the rule and the clip act on the reference's gradients, ``g_x · D/retain_norm`` and
  ``g_a · D/forget_norm``, so ``.grad`` is exactly the reference code's
  ``clip(g_x - (c/||g_a||) g_a, 1.0)``: c is a norm of the gradient of a pixel-sum loss, as there.
  The default of ``rescale`` and ``clip``.
* ``"mean"``: the rule and the clip act on ``g_x`` and ``g_a`` as they are. The default of
  ``ratio``, ``scale`` and ``erasediff``, whose constants are unit-free (only the total-norm clip
  sees the difference): the environment's ``ratio`` rule is unchanged by this option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives.batches import SISSBatch
from unlearn_gym.objectives.core import Terms
from unlearn_gym.objectives.family import objectives_for

RULES = ("rescale", "ratio", "scale", "clip", "erasediff")
GRAD_UNITS = ("sum", "mean")
#: rules whose constant is an absolute gradient norm: they work in the reference's pixel-sum units
SUM_UNIT_RULES = ("rescale", "clip")
_EPS = 1e-12


def default_grad_units(rule: str) -> str:
    """``"sum"`` for ``rescale``/``clip`` (reference constants), ``"mean"`` for the other rules.

    :param rule: one of :data:`RULES`.
    """
    return "sum" if rule in SUM_UNIT_RULES else "mean"


def check_rule(rule: str, scale: float) -> None:
    """Raise ``ValueError`` for an unknown rule or a negative / non-finite constant.

    :param rule: one of :data:`RULES`.
    :param scale: its constant.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"the {rule!r} constant must be finite and >= 0, got {scale!r}")


def forget_coefficient(rule: str, scale: float, norm_x: float, norm_a: float, dot: float = 0.0) -> float:
    """The factor applied to the signed forget gradient ``d`` by ``rule``.

    :param rule: one of :data:`RULES`.
    :param scale: the rule's constant (c, ρ, s or η).
    :param norm_x: ``||g_x||`` (in the units the rule works in, see the module docstring).
    :param norm_a: ``||g_a||`` (same units).
    :param dot: ``<g_x, d>`` (``erasediff`` only; same units, squared).
    """
    if norm_a <= _EPS:
        return 0.0
    if rule == "rescale":
        return scale / norm_a
    if rule == "ratio":
        return scale * norm_x / norm_a
    if rule == "scale":
        return 1.0 + scale
    if rule == "clip":
        return min(1.0, scale / norm_a)
    if rule == "erasediff":
        return max(scale - dot / (norm_a * norm_a), 0.0)
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


@dataclass(frozen=True)
class UpdateResult:
    """Every component of one update (plain floats).

    :param loss: paper loss value ``retain - (1+s) forget`` at θ_t.
    :param retain_term: weighted retain term (``n/(n-k) · mean w_x L_x`` for SISS).
    :param forget_term: weighted forget term (``k/(n-k) · mean w_a L_a``).
    :param L_r: base retain-loss estimate ``retain_term / retain_norm``.
    :param L_f: base forget-loss estimate ``forget_term / forget_norm``.
    :param grad_norm_x: ``||g_x||``, gradient norm of the retain term.
    :param grad_norm_a: ``||g_a||``, gradient norm of the forget term.
    :param grad_norm_r: ``||g_x|| / retain_norm`` (gradient norm of ``L_r``).
    :param grad_norm_f: ``||g_a|| / forget_norm`` (gradient norm of ``L_f``).
    :param forget_coef: factor applied to the signed forget gradient in the rule's units: the
        combined gradient is ``grad_scale_x · g_x + forget_coef · grad_scale_a · d``.
    :param forget_step_norm: norm of the forget part of it, ``forget_coef · grad_scale_a · ||g_a||``
        (c for ``rescale``).
    :param total_grad_norm: norm of the combined gradient before clipping, in the rule's units
        (the number compared with ``max_grad_norm``).
    :param clip_factor: factor of the total-norm clip (1.0 = not clipped).
    :param grad_scale_x: factor applied to ``g_x`` before combining (``D/retain_norm`` in ``"sum"``
        units, 1 in ``"mean"``).
    :param grad_scale_a: factor applied to ``g_a`` (``D/forget_norm``, or 1).
    :param grad_cosine: cosine between ``g_x`` and ``g_a`` (0 when either is zero): +1 when the
        retain and forget terms pull θ the same way, so ascending the forget term fights the retain one.
    :param stats: the objective's diagnostics (``L_x``, ``L_a``, weight statistics, ...).
    """

    loss: float
    retain_term: float
    forget_term: float
    L_r: float
    L_f: float
    grad_norm_x: float
    grad_norm_a: float
    grad_norm_r: float
    grad_norm_f: float
    forget_coef: float
    forget_step_norm: float
    total_grad_norm: float
    clip_factor: float
    grad_scale_x: float = 1.0
    grad_scale_a: float = 1.0
    grad_cosine: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Flat dictionary (``stats`` merged in)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stats"}  # floats: no deep copy
        d.update(self.stats)
        return d


def _grads(term: torch.Tensor | None, params: Sequence[torch.Tensor], retain_graph: bool) -> list[torch.Tensor]:
    if term is None:
        return [torch.zeros_like(p) for p in params]
    gs = torch.autograd.grad(term, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def _norm(gs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gs]))


def compute_gradients(
    terms: Terms, params: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(g_x, g_a)``: gradients of the retain and the forget term (two backward passes).

    :param terms: output of an objective.
    :param params: the parameters to differentiate.
    """
    g_x = _grads(terms.retain, params, retain_graph=terms.forget is not None)
    g_a = _grads(terms.forget, params, retain_graph=False)
    return g_x, g_a


def _dot(g_x: Sequence[torch.Tensor], g_a: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((gx * ga).sum() for gx, ga in zip(g_x, g_a))


def _cosine(dot: float, norm_x: float, norm_a: float) -> float:
    return dot / (norm_x * norm_a) if norm_x > _EPS and norm_a > _EPS else 0.0


def gradient_stats(terms: Terms, params: Sequence[torch.Tensor]) -> tuple[float, float, float]:
    """``(||g_x||, ||g_a||, cos(g_x, g_a))`` of a :class:`Terms` without touching ``.grad`` or stepping.

    :param terms: output of an objective.
    :param params: the parameters to differentiate.
    """
    g_x, g_a = compute_gradients(terms, params)
    nx, na, dot = torch.stack([_norm(g_x), _norm(g_a), _dot(g_x, g_a)]).tolist()
    return nx, na, _cosine(dot, nx, na)


def gradient_norms(terms: Terms, params: Sequence[torch.Tensor]) -> tuple[float, float]:
    """``(||g_x||, ||g_a||)`` of a :class:`Terms` without touching ``.grad`` or stepping.

    :param terms: output of an objective.
    :param params: the parameters to differentiate.
    """
    g_x, g_a = compute_gradients(terms, params)
    nx, na = torch.stack([_norm(g_x), _norm(g_a)]).tolist()
    return nx, na


def apply_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    terms: Terms,
    rule: str = "rescale",
    scale: float = 5.0,
    *,
    max_grad_norm: float | None = 1.0,
    params: Sequence[torch.Tensor] | None = None,
    grad_units: str | None = None,
) -> UpdateResult:
    """Combine the retain and forget gradients by ``rule``, clip, and step ``optimizer``.

    :param model: the model whose parameters are updated.
    :param optimizer: its optimizer (``None``: compute everything, set ``.grad``, do not step).
    :param terms: the objective's output at the current parameters.
    :param rule: one of :data:`RULES`.
    :param scale: the rule's constant (c, ρ, s or η); c of ``rescale``/``clip`` is a norm of the
        gradient of the pixel-sum loss (the reference's unit) unless ``grad_units="mean"``.
    :param max_grad_norm: total-norm clip after combining, in the same units (``None``: no clip).
    :param params: parameters to update (default: all of ``model`` that require grad).
    :param grad_units: ``"sum"`` (gradients of the pixel-sum losses of the SISS reference code) or
        ``"mean"`` (of the pixel-mean losses); ``None``: :func:`default_grad_units` of the rule.
    """
    check_rule(rule, scale)
    grad_units = default_grad_units(rule) if grad_units is None else grad_units
    if grad_units not in GRAD_UNITS:
        raise ValueError(f"grad_units must be one of {GRAD_UNITS} or None, got {grad_units!r}")
    sx = sa = 1.0
    if grad_units == "sum":  # the reference's gradients: pixel sums, no paper coefficients
        sx = terms.loss_elements / terms.retain_norm if terms.retain_norm > 0 else 0.0
        sa = terms.loss_elements / terms.forget_norm if terms.forget_norm > 0 else 0.0
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    g_x, g_a = compute_gradients(terms, params)
    sign = float(terms.forget_sign)
    norm_x, norm_a = _norm(g_x), _norm(g_a)
    raw_dot = _dot(g_x, g_a)  # <g_x, g_a>: the cosine observed by the env; EraseDiff's rule uses it
    nx, na, rd = torch.stack([norm_x, norm_a, raw_dot.to(norm_x.dtype)]).tolist()
    dt = sign * rd if rule == "erasediff" else 0.0
    coef = forget_coefficient(rule, scale, sx * nx, sa * na, sx * sa * dt)
    if sx != 1.0:
        torch._foreach_mul_(g_x, sx)
    combined = torch._foreach_add(g_x, g_a, alpha=sign * coef * sa)
    total = _norm(combined).item()
    clip = 1.0
    if max_grad_norm is not None and total > max_grad_norm:
        clip = max_grad_norm / (total + 1e-6)
        torch._foreach_mul_(combined, clip)
    for p, g in zip(params, combined):
        p.grad = g
    if optimizer is not None:
        optimizer.step()
    names = ["loss", "retain", "forget", *terms.stats]
    vals = [terms.loss.detach()]
    zero = torch.zeros((), device=terms.loss.device)
    vals.append(terms.retain.detach() if terms.retain is not None else zero)
    vals.append(terms.forget.detach() if terms.forget is not None else zero)
    vals.extend(v.detach().float() for v in terms.stats.values())
    flat = dict(zip(names, torch.stack([v.float().reshape(()) for v in vals]).tolist()))
    retain_v, forget_v = flat.pop("retain"), flat.pop("forget")
    return UpdateResult(
        loss=flat.pop("loss"), retain_term=retain_v, forget_term=forget_v,
        L_r=retain_v / terms.retain_norm, L_f=forget_v / terms.forget_norm,
        grad_norm_x=nx, grad_norm_a=na, grad_norm_r=nx / terms.retain_norm,
        grad_norm_f=na / terms.forget_norm, forget_coef=coef, forget_step_norm=coef * sa * na,
        total_grad_norm=total, clip_factor=clip, grad_scale_x=sx, grad_scale_a=sa,
        grad_cosine=_cosine(rd, nx, na), stats=flat,
    )


def siss_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    schedule: NoiseSchedule,
    batch: SISSBatch,
    lam: float | torch.Tensor,
    *,
    rule: str = "rescale",
    scale: float = 5.0,
    s: float = 0.0,
    generator: torch.Generator | None = None,
    max_grad_norm: float | None = 1.0,
    importance_sampling: bool = True,
    grad_units: str | None = None,
) -> UpdateResult:
    """One SISS update: :func:`~unlearn_gym.objectives.siss.siss_terms` then :func:`apply_update`.

    Exactly one forward and two backward passes. With a VAE and its
    :class:`~unlearn_gym.objectives.vae.VAENoise` in place of the schedule, the VAE's terms
    (:func:`~unlearn_gym.objectives.family.objectives_for`).

    :param model: ε-prediction network, or a VAE (updated in place).
    :param optimizer: its optimizer (``None``: do not step).
    :param schedule: the noise schedule (a VAE: its noise level).
    :param batch: paired batch.
    :param lam: forget mixture weight λ in (0, 1).
    :param rule: update rule (see :data:`RULES`).
    :param scale: the rule's constant.
    :param s: forget scale of the reported loss value (``rule="scale"`` uses ``scale`` here too).
    :param generator: random source of noise, timesteps and the mixture draws.
    :param max_grad_norm: total-norm clip.
    :param importance_sampling: ``False``: SISS (No IS) (two forward passes' worth of batch).
    :param grad_units: ``"sum"``, ``"mean"`` or ``None`` (the rule's default), see :func:`apply_update`.
    """
    family = objectives_for(schedule)
    if importance_sampling:
        terms = family.siss(model, schedule, batch, lam, s=s, generator=generator)
    else:
        terms = family.no_is(model, schedule, batch, s=s, generator=generator)
    return apply_update(model, optimizer, terms, rule, scale, max_grad_norm=max_grad_norm, grad_units=grad_units)
