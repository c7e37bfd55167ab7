"""SFD score alignment on the DDPM itself (the seed's §5.2, docs/method.md §4), fixed and adaptive target.

Class erasure of the forget digit c_f without a one-step generator: the DDPM ε_θ is fine-tuned so
that its score for c_f matches the frozen teacher's score for a retain class, while its scores for
the retain classes stay the teacher's::

    L = E ||ε_θ(x_t, t, c_r) - ε_T(x_t, t, c_r)||²  +  α E ||ε_θ(x_t, t, c_f) - target(x_t, t)||²

* ``sfd-align``: ``target = ε_T(x_t, t, c_o)``, c_o a fixed retain class (default: the next digit,
  skipping the contaminated label 1) or ``override="random"`` (a uniformly random retain class per
  sample).
* ``sfd-align-adaptive``: ``target = Σ_j λ_j(x_t) ε_T(x_t, t, c_j)`` over all retain classes j, with
  weights inferred per sample as the teacher's diffusion-classifier posterior restricted to the
  retain classes, ``λ = softmax_j(-||ε - ε_T(x_t, t, c_j)||² / (2τ))`` (ε is known: x_t was made
  from x_0 with it; the squared error is summed over pixels, a Gaussian log-likelihood of ε). Each
  forget sample is steered to the retain classes that explain it best — the "high-probability
  manifold other than the forget class's" — and τ → ∞ gives the uniform mixture.

Inputs (data-free, as SFD): ``x_t = γ_t x_0 + σ_t ε`` with ``x_0`` from a pool of the teacher's own
DDIM samples, drawn once at the start (``pool_per_class`` per label, ``pool_steps`` DDIM steps, from
the run's generator), t uniform on 0..T-1 (every level the DDIM sampler visits). The retain term
draws x_0 of the retain classes; the forget term draws half of its x_0 from the teacher's c_f
samples (where the model's c_f score starts) and half from the targets' samples (where it should
lead), so the c_f score is matched along both. Both terms are pixel-mean squared ε errors (the
pretraining loss's units); θ takes one step of the setup's AdamW on ``g_distill + α g_align``
(``apply_update`` with the ``scale`` rule), clipped to ``max_grad_norm``.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from torch import nn

from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS
from unlearn_gym.device import model_device, randint, randn
from unlearn_gym.diffusion.samplers import ddim_sample
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.methods.registry import Method, register_method
from unlearn_gym.methods.setup import UnlearnSetup
from unlearn_gym.methods.static import check_nonnegative
from unlearn_gym.objectives import Terms, apply_update, per_sample_mse


def forget_digit(task: str) -> int:
    """The digit of an ``erase-<digit>`` task, else a ``ValueError`` that names what to use.

    :param task: the task name.
    """
    if task.startswith("erase-") and task[6:].isdigit() and 0 <= int(task[6:]) < NUM_LABELS:
        return int(task[6:])
    raise ValueError(
        f"SFD needs a class to erase: it serves 'erase-<digit 0-9>' tasks, not {task!r}. For 'trousers'"
        " use 'hybrid' (SISS for the data + SFD retain distillation) or a SISS method"
    )


def retain_classes(c_f: int) -> list[int]:
    """Every label but the forget class.

    :param c_f: the forget class.
    """
    return [c for c in range(NUM_LABELS) if c != c_f]


def resolve_override(c_f: int, override: Any) -> int | str:
    """The override class c_o: an int retain class, ``"random"``, or ``None`` for the default.

    The default is the next digit after c_f, skipping the contaminated label 1 (its samples are
    partly trousers): erase-0 -> 2, erase-6 -> 7, erase-9 -> 0.

    :param c_f: the forget class.
    :param override: ``None``, ``"random"`` or a label other than c_f.
    """
    if override is None:
        c = (c_f + 1) % NUM_LABELS
        while c in (c_f, CONTAMINATED_LABEL):
            c = (c + 1) % NUM_LABELS
        return c
    if override == "random":
        return "random"
    if isinstance(override, bool) or not isinstance(override, int) or override not in retain_classes(c_f):
        raise ValueError(
            f"override must be a retain class (0-9 other than the erased {c_f}), 'random' or None, got {override!r}"
        )
    return int(override)


def override_labels(c_o: int | str, c_f: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` teacher labels for forget samples: c_o everywhere, or uniform retain classes (``"random"``).

    :param c_o: :func:`resolve_override`'s value.
    :param c_f: the forget class.
    :param n: number of labels.
    :param generator: random source (``"random"`` only).
    """
    if c_o == "random":
        classes = torch.tensor(retain_classes(c_f))
        return classes[torch.randint(0, len(classes), (n,), generator=generator)]
    return torch.full((n,), int(c_o), dtype=torch.long)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with ``requires_grad=False`` (the SFD teacher).

    :param model: the network to copy.
    """
    teacher = copy.deepcopy(model).eval()
    teacher.requires_grad_(False)
    return teacher


class TeacherPool:
    """The teacher's DDIM samples, ``per_class`` per label, drawn once: the data-free x_0 of alignment.

    :param teacher: ε-prediction network with a ``resolution`` attribute.
    :param schedule: its noise schedule.
    :param per_class: samples per label.
    :param steps: DDIM steps.
    :param generator: random source of the initial noise.
    """

    def __init__(self, teacher: nn.Module, schedule: NoiseSchedule, per_class: int, steps: int,
                 generator: torch.Generator):
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"pool_per_class must be an integer >= 1, got {per_class!r}")
        labels = torch.arange(NUM_LABELS).repeat_interleave(per_class)
        x = ddim_sample(teacher, schedule, labels, steps=int(steps), generator=generator, batch_size=500)
        self.per_class = per_class
        self.images = x.view(NUM_LABELS, per_class, *x.shape[1:]).to(model_device(teacher))

    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One pool image of each requested label (uniform with replacement).

        :param labels: labels ``(B,)``.
        :param generator: random source.
        """
        idx = randint(0, self.per_class, (len(labels),), generator, self.images.device)
        return self.images[labels.to(self.images.device), idx]


def _noisy(schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator):
    t = schedule.sample_timesteps(len(x0), generator, x0.device)
    noise = randn(x0.shape, generator, x0.device)
    return schedule.q_sample(x0, t, noise), t, noise


def distill_loss(model: nn.Module, teacher: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor,
                 y: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """SFD retain distillation ``mean ||ε_θ(x_t, t, y) - ε_T(x_t, t, y)||²`` (pixel mean; differentiable).

    :param model: the DDPM being unlearned.
    :param teacher: the frozen pretrained DDPM.
    :param schedule: noise schedule.
    :param x0: clean inputs (teacher samples or retain data).
    :param y: their labels (both networks see them).
    :param generator: random source of t and ε.
    """
    x_t, t, _ = _noisy(schedule, x0, generator)
    with torch.no_grad():
        target = teacher(x_t, t, y)
    return per_sample_mse(model(x_t, t, y), target).mean()


def align_loss(
    model: nn.Module, teacher: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, c_f: int, *,
    generator: torch.Generator, teacher_labels: torch.Tensor | None = None,
    mixture_classes: list[int] | None = None, tau: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SFD forget alignment ``mean ||ε_θ(x_t, t, c_f) - target||²`` and detached diagnostics.

    Give exactly one target: ``teacher_labels`` (``ε_T(x_t, t, c_o)`` per sample) or
    ``mixture_classes`` (``Σ_j λ_j ε_T(x_t, t, c_j)``, λ the teacher's posterior over those classes
    at temperature ``tau``; see the module docstring).

    :param model: the DDPM being unlearned (sees c_f).
    :param teacher: the frozen pretrained DDPM.
    :param schedule: noise schedule.
    :param x0: clean inputs.
    :param c_f: the forget class.
    :param generator: random source of t and ε.
    :param teacher_labels: the teacher's labels (override classes), ``(B,)``.
    :param mixture_classes: the retain classes of the adaptive mixture.
    :param tau: temperature of the mixture weights (> 0).
    """
    if (teacher_labels is None) == (mixture_classes is None):
        raise ValueError("give exactly one of teacher_labels (fixed/random override) or mixture_classes (adaptive)")
    x_t, t, noise = _noisy(schedule, x0, generator)
    b = len(x0)
    stats: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        if teacher_labels is not None:
            target = teacher(x_t, t, teacher_labels)
        else:
            if not tau > 0:
                raise ValueError(f"tau must be > 0, got {tau}")
            k = len(mixture_classes)
            ys = torch.tensor(mixture_classes).repeat_interleave(b)
            eps = teacher(x_t.repeat(k, 1, 1, 1), t.repeat(k), ys).view(k, b, *x0.shape[1:])
            logits = -(eps - noise).pow(2).flatten(2).sum(2) / (2.0 * tau)  # (k, B)
            lam = torch.softmax(logits, dim=0)
            target = (lam.view(k, b, *([1] * (x0.ndim - 1))) * eps).sum(0)
            stats["mix_weight_max"] = lam.max(0).values.mean()
            stats["mix_entropy"] = -(lam * lam.clamp_min(1e-30).log()).sum(0).mean()
    pred = model(x_t, t, torch.full((b,), int(c_f), dtype=torch.long))
    return per_sample_mse(pred, target).mean(), stats


class _AlignmentMethod(Method):
    """Shared set-up of the score-alignment methods: teacher, pool, classes, α."""

    tasks = ("erase-*",)

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.c_f = forget_digit(setup.task)
        self.retain = retain_classes(self.c_f)
        self.align_weight = check_nonnegative(self.p["align_weight"], "align_weight")
        if not self.align_weight > 0:
            raise ValueError("align_weight must be > 0 (it is α, the weight of the forget alignment)")
        self.teacher = frozen_copy(setup.model)
        self.pool = TeacherPool(self.teacher, setup.schedule, self.p["pool_per_class"], self.p["pool_steps"],
                                setup.generator)

    def _retain_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        su = self.setup
        classes = torch.tensor(self.retain)
        y = classes[torch.randint(0, len(classes), (su.sampler.batch_size,), generator=su.generator)]
        return self.pool.draw(y, su.generator), y

    def _forget_x0(self, target_labels: torch.Tensor) -> torch.Tensor:
        """Half the teacher's c_f samples, half samples of each row's target class."""
        su = self.setup
        b = len(target_labels)
        half = b // 2
        ys = torch.cat([torch.full((half,), self.c_f, dtype=torch.long), target_labels[half:]])
        return self.pool.draw(ys, su.generator)

    def _update(self, distill: torch.Tensor, align: torch.Tensor, stats: dict[str, torch.Tensor]) -> dict[str, float]:
        su = self.setup
        a = self.align_weight
        terms = Terms(retain=distill, forget=a * align, loss=distill + a * align, retain_norm=1.0, forget_norm=a,
                      forget_sign=1.0, stats={"L_x": distill.detach(), "L_a": align.detach(), **stats},
                      loss_elements=int(self.pool.images[0, 0].numel()))
        upd = apply_update(su.model, su.optimizer, terms, "scale", 0.0, max_grad_norm=su.max_grad_norm,
                           grad_units="mean")
        return upd.as_dict()


@register_method
class ScoreAlignment(_AlignmentMethod):
    """Align the DDPM's c_f score with the teacher's c_o score; distil the retain classes."""

    name = "sfd-align"
    summary = "SFD score alignment on the DDPM: ε_θ(·,c_f) → ε_T(·,c_o), ε_θ(·,c_r) → ε_T(·,c_r) (erase-<d>)"
    params: ClassVar[dict[str, Any]] = {"override": None, "align_weight": 0.1, "pool_per_class": 64,
                                        "pool_steps": 25}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.c_o = resolve_override(self.c_f, self.p["override"])
        self.p["override"] = self.c_o  # record the resolved value

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        x_r, y_r = self._retain_batch()
        distill = distill_loss(su.model, self.teacher, su.schedule, x_r, y_r, generator=su.generator)
        y_o = override_labels(self.c_o, self.c_f, su.sampler.batch_size, su.generator)
        align, stats = align_loss(su.model, self.teacher, su.schedule, self._forget_x0(y_o), self.c_f,
                                  generator=su.generator, teacher_labels=y_o)
        return self._update(distill, align, stats)


@register_method
class AdaptiveScoreAlignment(_AlignmentMethod):
    """Align the c_f score with an inferred mixture of the retain classes' teacher scores."""

    name = "sfd-align-adaptive"
    summary = "SFD score alignment, adaptive multi-class target Σ_j λ_j ε_T(·,c_j), λ = teacher posterior (erase-<d>)"
    params: ClassVar[dict[str, Any]] = {"tau": 1.0, "align_weight": 0.1, "pool_per_class": 64, "pool_steps": 25}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        self.tau = check_nonnegative(self.p["tau"], "tau")
        if not (self.tau > 0 and math.isfinite(self.tau)):
            raise ValueError(f"tau must be a finite number > 0, got {self.p['tau']!r}")

    def step(self, i: int) -> dict[str, float]:
        su = self.setup
        x_r, y_r = self._retain_batch()
        distill = distill_loss(su.model, self.teacher, su.schedule, x_r, y_r, generator=su.generator)
        y_t = override_labels("random", self.c_f, su.sampler.batch_size, su.generator)  # x_0 of the targets' half
        align, stats = align_loss(su.model, self.teacher, su.schedule, self._forget_x0(y_t), self.c_f,
                                  generator=su.generator, mixture_classes=self.retain, tau=self.tau)
        return self._update(distill, align, stats)
