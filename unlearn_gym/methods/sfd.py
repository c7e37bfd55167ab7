"""Score Forgetting Distillation, one-step (Chen, Zhang, Zhou 2024; docs/method.md §4): ``sfd``.

Three networks start from the pretrained EMA DDPM: the frozen teacher ε_φ, a fake-score network
ε_ψ and the one-step generator G (its UNet is the setup's model). Each step alternates:

1. **fake score**: ``x_g = G(z, c)`` (no gradient, :func:`~unlearn_gym.diffusion.one_step.one_step_images`
   at t* = 440), t ~ U{38..711}, ``L_ψ = mean_b w_b ||ε - ε_ψ(γ_t x_g + σ_t ε, t, c)||²``;
2. **generator** (SiD loss, α = 1.2): with ``x_t`` from a fresh ``x_g`` (with gradient), the Tweedie
   x_0 predictions ``p_x`` of the teacher and ``s_x`` of the fake score, ``ω = sg(mean |p_x - x_g|)``
   clamped at 1e-5 per sample: ``L_G = mean_b w_b Σ_pixels (p_x - s_x)((p_x - x_g) - α(p_x - s_x)) / ω``.
   For the forget class c_f the fake score sees c_f and the teacher sees the override class c_o, so
   G's c_f images are pulled to the teacher's c_o distribution. The gradient reaches G through
   ``x_g`` and through both networks' inputs (their weights are frozen during this step), as in SiD.

Labels c are uniform over the ten digits; weights w are ``retain_weight`` (1.0) for retain
classes and ``forget_weight`` for c_f. Squared errors are summed over pixels (SiD's convention; it
matters only for ``clip_value``). Both networks use Adam (betas (0, 0.999)) with gradients clipped
by value to ``clip_value`` (1.0), ``fake_steps`` fake-score updates per generator update; G's
weights are averaged by an EMA (``ema_decay``; its first update copies G). The output is a
:class:`~unlearn_gym.diffusion.one_step.OneStepGenerator` around the EMA (``output="ema"``) or the
raw generator (``output="generator"``).

The learning rates, ``forget_weight``, ``ema_decay`` and ``fake_steps`` come from a named
configuration (:data:`CONFIGS`; ``config=None`` picks the preset's, :data:`PRESET_CONFIGS`), and a
value the caller passes wins. ``reference`` is SFD's own (lr 1e-5 for both networks, EMA 0.9999,
forget weight 0.01): made for GPU runs of many thousand steps, it does not erase on a CPU budget
(an EMA of 0.9999 after N steps still holds about 0.9999^N of the pretrained weights). ``cpu`` is
the CPU schedule measured on ``micro`` and ``tiny`` (docs/methods.md, "One-step SFD on a CPU
schedule"): 300 steps, generator lr 1e-4, fake score 3e-5, forget weight 0.2, EMA half-life 10 % of
the run (``ema_half_life``: 30 steps at 300; the run's length comes from ``UnlearnSetup.run_steps``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from torch import nn

from unlearn_gym.data import NUM_LABELS
from unlearn_gym.device import model_device, randn
from unlearn_gym.diffusion.ema import make_ema
from unlearn_gym.diffusion.one_step import T_STAR, OneStepGenerator, one_step_images
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.methods.registry import Method, register_method
from unlearn_gym.methods.score_alignment import forget_digit, frozen_copy, override_labels, resolve_override
from unlearn_gym.methods.setup import UnlearnSetup
from unlearn_gym.methods.static import check_nonnegative

OUTPUTS = ("ema", "generator")

#: named configurations: the SFD reference (long GPU runs) and the CPU schedules measured per preset
#: (docs/methods.md, "SFD"); ``steps`` is the length each was measured at (``run`` takes ``steps``)
CONFIGS: dict[str, dict[str, Any]] = {
    "reference": {"lr": 1e-5, "fake_lr": None, "ema_decay": 0.9999, "ema_half_life": None, "forget_weight": 0.01,
                  "fake_steps": 1, "steps": 300},
    # measured on micro and tiny (benchmarks/sfd_schedule.py, docs/results/sfd-micro-erase6): 300 steps,
    # EMA half-life 30 steps; ema_decay None: a half-life of ``ema_half_life`` (10 %) of the run's length
    "cpu": {"lr": 1e-4, "fake_lr": 3e-5, "ema_decay": None, "ema_half_life": 0.1, "forget_weight": 0.2,
            "fake_steps": 1, "steps": 300},
}
#: the configuration a preset uses when the caller names none (other presets: ``reference``)
PRESET_CONFIGS: dict[str, str] = {"micro": "cpu", "tiny": "cpu"}
#: the parameters a configuration sets (a value the caller passes wins)
CONFIG_KEYS = ("fake_lr", "ema_decay", "ema_half_life", "forget_weight", "fake_steps")


def resolve_config(preset: str, params: dict[str, Any]) -> dict[str, Any]:
    """The configuration's values (``lr``, ``steps`` and :data:`CONFIG_KEYS`) under the caller's.

    :param preset: the run's preset name.
    :param params: the caller's ``sfd`` parameters (``config`` names the configuration; ``None``:
        the preset's, see :data:`PRESET_CONFIGS`).
    :raises ValueError: an unknown configuration name.
    """
    name = params.get("config") or PRESET_CONFIGS.get(preset, "reference")
    if name not in CONFIGS:
        raise ValueError(f"unknown sfd config {name!r}; known: {sorted(CONFIGS)}")
    given = {k: v for k, v in params.items() if k in CONFIG_KEYS and v is not None}
    return {**CONFIGS[name], **given, "config": name}


def tweedie_x0(eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """``(x_t - σ_t ε) / γ_t``: the x_0 prediction of an ε-prediction.

    :param eps: predicted noise.
    :param x_t: the noisy input.
    :param t: its timesteps.
    :param schedule: noise schedule.
    """
    g, s = schedule.coefficients(t, x_t.ndim, x_t.device)
    return (x_t - s * eps) / g


def sid_generator_loss(p_x: torch.Tensor, s_x: torch.Tensor, x_g: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-sample SiD loss ``Σ (p - s)((p - x_g) - α (p - s)) / ω``, ``ω = sg(mean |p - x_g|) ∨ 1e-5``.

    :param p_x: teacher's x_0 prediction.
    :param s_x: fake score's x_0 prediction.
    :param x_g: the generator's images.
    :param alpha: SiD's α (1.2).
    """
    omega = (p_x - x_g).abs().flatten(1).mean(1).detach().clamp_min(1e-5)
    diff = p_x - s_x
    per = (diff * ((p_x - x_g) - alpha * diff)).flatten(1).sum(1)
    return per / omega


def _timesteps(n: int, t_min: int, t_max: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(t_min, t_max + 1, (n,), generator=generator)


def _grad_norm(params: list[torch.Tensor]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0


@register_method
class SFD(Method):
    """One-step Score Forgetting Distillation: a generator distilled from the teacher with c_f -> c_o."""

    name = "sfd"
    tasks = ("erase-*",)
    summary = "SFD one-step distillation (SiD loss, α 1.2): teacher, fake score, generator; c_f -> c_o (erase-<d>)"
    params: ClassVar[dict[str, Any]] = {
        "override": None, "alpha": 1.2, "t_star": T_STAR, "t_min": 38, "t_max": 711, "retain_weight": 1.0,
        "forget_weight": None, "ema_decay": None, "ema_half_life": None, "clip_value": 1.0, "output": "ema",
        "fake_lr": None, "fake_steps": None, "config": None,
    }
    setup_defaults: ClassVar[dict[str, Any]] = {"lr": CONFIGS["reference"]["lr"], "max_grad_norm": None}

    @classmethod
    def setup_defaults_for(cls, preset: str, params: dict[str, Any]) -> dict[str, Any]:
        """The configuration's ``lr`` (the preset's, or ``params["config"]``) and no norm clipping.

        :param preset: the run's preset name.
        :param params: the caller's ``sfd`` parameters.
        """
        return {"lr": resolve_config(preset, params)["lr"], "max_grad_norm": None}

    def __init__(self, setup: UnlearnSetup, **params: Any):
        super().__init__(setup, **params)
        cfg = resolve_config(setup.preset.name, params)
        self.p.update({k: v for k, v in cfg.items() if k in self.params})
        p = self.p
        self.c_f = forget_digit(setup.task)
        self.c_o = resolve_override(self.c_f, p["override"])
        p["override"] = self.c_o
        self.alpha = check_nonnegative(p["alpha"], "alpha")
        steps = setup.schedule.num_steps
        for key in ("t_star", "t_min", "t_max"):
            if isinstance(p[key], bool) or not isinstance(p[key], int) or not 0 <= p[key] < steps:
                raise ValueError(f"{key} must be an integer timestep in [0, {steps - 1}], got {p[key]!r}")
        if p["t_min"] > p["t_max"]:
            raise ValueError(f"need t_min <= t_max, got {p['t_min']} > {p['t_max']}")
        self.weights = torch.full((NUM_LABELS,), check_nonnegative(p["retain_weight"], "retain_weight"))
        self.weights[self.c_f] = check_nonnegative(p["forget_weight"], "forget_weight")
        self.clip_value = p["clip_value"]
        if self.clip_value is not None and not check_nonnegative(self.clip_value, "clip_value") > 0:
            raise ValueError("clip_value must be > 0 or None")
        if p["ema_decay"] is None:  # a half-life that is a fixed share of the run (measured at 300 steps)
            frac = float(p["ema_half_life"])
            if not 0.0 < frac <= 1.0:
                raise ValueError(f"ema_half_life must be in (0, 1], got {p['ema_half_life']!r}")
            p["ema_decay"] = 0.5 ** (1.0 / max(1.0, frac * (setup.run_steps or cfg["steps"])))
        if not 0.0 <= float(p["ema_decay"]) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {p['ema_decay']!r}")
        if p["output"] not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {p['output']!r}")
        if isinstance(p["fake_steps"], bool) or not isinstance(p["fake_steps"], int) or p["fake_steps"] < 1:
            raise ValueError(f"fake_steps must be an integer >= 1, got {p['fake_steps']!r}")
        lr = float(setup.config["lr"])
        fake_lr = lr if p["fake_lr"] is None else float(p["fake_lr"])
        if not fake_lr > 0:
            raise ValueError(f"fake_lr must be > 0 or None, got {p['fake_lr']!r}")
        self.generator_net = setup.model  # G: the pretrained EMA weights, updated in place
        self.teacher = frozen_copy(setup.model)
        self.fake = copy.deepcopy(setup.model).train()
        self.opt_g = torch.optim.Adam(self.generator_net.parameters(), lr=lr, betas=(0.0, 0.999))
        self.opt_fake = torch.optim.Adam(self.fake.parameters(), lr=fake_lr, betas=(0.0, 0.999))
        self.ema = make_ema(self.generator_net, float(p["ema_decay"]))

    def _labels(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Labels c, the teacher's labels (c_f -> c_o) and the per-sample weights."""
        su = self.setup
        b = su.sampler.batch_size
        y = torch.randint(0, NUM_LABELS, (b,), generator=su.generator)
        y_teacher = torch.where(y == self.c_f, override_labels(self.c_o, self.c_f, b, su.generator), y)
        return y, y_teacher, self.weights[y].to(model_device(self.generator_net))

    def _clip_and_step(self, net: nn.Module, opt: torch.optim.Optimizer) -> float:
        params = [q for q in net.parameters() if q.grad is not None]
        norm = _grad_norm(params)
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(params, float(self.clip_value))
        if self.setup.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, self.setup.max_grad_norm)
        opt.step()
        return norm

    def fake_score_step(self) -> dict[str, float]:
        """One update of ε_ψ on the generator's current images (denoising score matching)."""
        su, p = self.setup, self.p
        y, _, w = self._labels()
        dev = model_device(self.generator_net)
        z = randn((len(y), 1, su.preset.resolution, su.preset.resolution), su.generator, dev)
        with torch.no_grad():
            x_g = one_step_images(self.generator_net, su.schedule, z, y, p["t_star"])
        t = _timesteps(len(y), p["t_min"], p["t_max"], su.generator)
        noise = randn(x_g.shape, su.generator, dev)
        pred = self.fake(su.schedule.q_sample(x_g, t, noise), t, y)
        loss = (w * (pred - noise).pow(2).flatten(1).sum(1)).mean()
        self.opt_fake.zero_grad(set_to_none=True)
        loss.backward()
        return {"loss_fake": float(loss.detach()), "grad_norm_fake": self._clip_and_step(self.fake, self.opt_fake)}

    def generator_step(self) -> dict[str, float]:
        """One update of G by the SiD loss; for c_f the teacher sees c_o (the forget term)."""
        su, p = self.setup, self.p
        y, y_teacher, w = self._labels()
        dev = model_device(self.generator_net)
        z = randn((len(y), 1, su.preset.resolution, su.preset.resolution), su.generator, dev)
        self.fake.requires_grad_(False)
        try:
            x_g = one_step_images(self.generator_net, su.schedule, z, y, p["t_star"])
            t = _timesteps(len(y), p["t_min"], p["t_max"], su.generator)
            x_t = su.schedule.q_sample(x_g, t, randn(x_g.shape, su.generator, dev))
            p_x = tweedie_x0(self.teacher(x_t, t, y_teacher), x_t, t, su.schedule)
            s_x = tweedie_x0(self.fake(x_t, t, y), x_t, t, su.schedule)
            per = sid_generator_loss(p_x, s_x, x_g, self.alpha)
            loss = (w * per).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.fake.requires_grad_(True)
        norm = self._clip_and_step(self.generator_net, self.opt_g)
        self.ema.update_parameters(self.generator_net)
        forget = y == self.c_f
        return {
            "loss": float(loss.detach()), "total_grad_norm": norm,
            "L_G_retain": float(per[~forget].mean().detach()) if (~forget).any() else math.nan,
            "L_G_forget": float(per[forget].mean().detach()) if forget.any() else math.nan,
            "frac_forget": float(forget.float().mean()),
        }

    def step(self, i: int) -> dict[str, float]:
        fake: dict[str, float] = {}
        for _ in range(self.p["fake_steps"]):
            fake = self.fake_score_step()
        return {**fake, **self.generator_step()}

    def output_model(self) -> nn.Module:
        """The one-step generator: the EMA of G (``output="ema"``) or G itself."""
        net = self.ema.module if self.p["output"] == "ema" else self.generator_net
        return OneStepGenerator(net, t_star=self.p["t_star"], schedule=self.setup.schedule)

    def extra_state(self) -> dict[str, Any]:
        """The marker that makes ``load_ddpm_file`` rebuild a one-step generator, and its settings."""
        return {"one_step_generator": {"t_star": self.p["t_star"], "output": self.p["output"],
                                       "forget_class": self.c_f, "override": self.c_o}}
