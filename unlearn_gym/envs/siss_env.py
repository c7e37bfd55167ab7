"""``SISSUnlearnEnv``: choosing the SISS mixture weight λ, one gradient update per step."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from unlearn_gym.data import build_contaminated_mnist, task_split
from unlearn_gym.device import resolve_device
from unlearn_gym.diffusion.one_step import sample_images
from unlearn_gym.envs.encoding import decode_action, encode_observation, observation_bounds
from unlearn_gym.envs.estimators import Probe, exact_state, initial_state, reference_retain_loss
from unlearn_gym.envs.outcome import OutcomeConfig, OutcomeScorer
from unlearn_gym.envs.persistence import CheckpointMixin
from unlearn_gym.envs.validation import check_env_arguments
from unlearn_gym.imaging import image_grid
from unlearn_gym.objectives import MODEL_FAMILIES, PairSampler, apply_update, check_rule, family_noise, objectives_for
from unlearn_gym.presets import get_preset
from unlearn_gym.pretrained import load_classifier, load_pretrained

MODES = ("episodic", "online")
STATES = ("update", "exact")
REWARDS = ("siss", "probe", "outcome")
ACTIONS = ("lambda", "lambda+scale")



class SISSUnlearnEnv(CheckpointMixin, gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    Machine unlearning of a class-conditional DDPM with SISS (Alberti et al. 2025) as a Markov
    decision process (the seed paper, §5.3). The model was pretrained on MNIST digits whose class
    "1" is contaminated with Fashion-MNIST trousers; the task is to forget those trousers (or a whole
    digit) while keeping everything else. One step is one AdamW update of the DDPM on one
    mini-batch of the SISS objective; the agent chooses the mixture weight λ of that update.

    ## Action Space

    `Box(-1, 1, (1,), float32)`, mapped affinely to λ ∈ [λ_min, λ_max] (default [0.05, 0.95]):
    `λ = λ_min + (a + 1)/2 (λ_max - λ_min)`; action 0 is λ = 0.5. Values outside [-1, 1] (±inf
    included) are clipped; a NaN action raises `ValueError`.
    With `action="lambda+scale"` (an extension beyond the paper) the action is
    `Box(-1, 1, (2,), float32)`; the second component sets the constant of the update rule (ρ for
    `ratio`, c for `rescale`/`clip`, s for `scale`) log-uniformly on `scale_range` (default
    [scale/10, 10·scale], so 0 is the preset's constant). On small models the forget strength, not
    λ, decides the forget/retain trade-off (METHOD.md §6).

    ## Observation Space

    `Box(low, high, (6,), float32)`:

    | index | observation | range |
    |---|---|---|
    | 0 | log10 L_r, retain-loss estimate | [-10, 10] |
    | 1 | log10 L_f, forget-loss estimate | [-10, 10] |
    | 2 | log10 ‖g_r‖, retain gradient norm | [-10, 10] |
    | 3 | log10 ‖g_f‖, forget gradient norm | [-10, 10] |
    | 4 | λ_prev, the previous λ (0.5 after a reset) | [0, 1] |
    | 5 | t/T, progress through the episode | [0, 1] |

    Logs are clipped to the range; non-finite values (divergence only) map to its ends, so an
    observation is never NaN. `state="update"` (default) takes L_r, L_f and the norms from the
    importance-weighted terms of the update just made (they describe θ_t, the parameters before
    the step): zero extra cost. `state="exact"` recomputes the plain retain and forget losses and
    their gradient norms at θ_{t+1} on a fresh batch, as the paper does: one extra forward pass of
    2B and two backward passes per step (about twice the cost of a step, see
    `benchmarks/env_speed.py`). The first observation after a restore is precomputed at θ_0.

    ## Rewards

    `r_t = -L_SISS - β (λ_t - λ_{t-1})²` with β = 0.1 by default, where
    `L_SISS = n/(n-k) w_x L_x - (1+s) k/(n-k) w_a L_a` is the paper's loss value (with
    `x_from="retain"` the first coefficient is 1) and s = `s` (default 0, fixed, independent of the
    action). `reward="siss"` (paper) uses the L_SISS of the update's own mini-batch at θ_t (free,
    noisy). `reward="probe"` evaluates L_SISS(θ_{t+1}; λ_t) on a fixed held-out probe batch with fixed
    noise, timesteps and mixture draws (common random numbers), so consecutive rewards differ by
    the effect of the update, not by sampling noise; it costs one forward pass of `probe_size`.
    The loss term is clipped to ±`reward_clip` (10; a non-finite loss counts as +10).

    `reward="outcome"` (the benchmark's target, not in the paper): 0 at every step and, at the
    episode's end (truncation or termination), the **outcome score** in [-1, 1] (forgetting that
    counts only while the retain side stays within a tolerance; see
    `unlearn_gym.envs.outcome`). Optional potential-based shaping (`shaping=k > 0`, Ng et al. 1999):
    `F_t = Φ(θ_{t+1}) - Φ(θ_t)` with `Φ(θ) = -k L_SISS(θ; λ=0.5)` on the fixed probe batch and
    Φ = 0 at the episode's end, so the shaping terms of an episode sum to the constant `-Φ(θ_0)`
    and the ranking of policies is unchanged; it costs one probe forward pass per step.

    `info["reward_terms"]` holds `loss`, `outcome`, `shaping` and `smoothness` (zero where the
    reward mode does not use them); they sum to the reward. Whatever the reward,
    `info["paper_reward"]` is the paper's step reward (the `reward="siss"` value), so the paper's
    return can be reported beside any other; with
    `outcome=True` (default) the final step's `info["outcome"]` holds the outcome score (forget
    score, retain mean / worst confident accuracy, one-rate, the combined scalar, standard errors
    and the score's version), measured on fixed noise (common random numbers across episodes and
    policies).

    ## Starting State

    θ_0 is the shipped pretrained EMA model of the preset (or `checkpoint`), a fresh AdamW state and
    λ_prev = 0.5. Episodic resets restore them from memory (no disk reads).

    ## Episode End

    * Truncation: after `horizon` steps (default: the preset's; 100 for `tiny`, 50 for `micro`, or
      the instance's).
    * Termination: `info["diverged"] = True` when a loss or gradient norm is non-finite, or the
      running mean of the retain-loss estimate (an EMA giving the newest step weight 0.1, so one
      unlucky mini-batch cannot trigger it) exceeds `divergence_factor` (10) times the retain loss
      of θ_0 (1,024 fixed retain samples, fixed noise). Measured on `micro` with B = 8 and λ = 0.95
      for 300 steps: single-batch estimates reached 34x the reference, the EMA at most 3.9x.
      The next reset restores θ_0 in either mode.

    `mode="episodic"` (default): every reset restores θ_0, the optimizer state and λ_prev.
    `mode="online"`: one long unlearning run. A reset restores nothing: it only restarts the step
    counter t (the run still truncates every T steps, so evaluation and GAE work) while θ, the
    optimizer, λ_prev and `global_step` persist. The first reset, a reset after a divergence and a
    reset with an explicit `seed` start a new run from θ_0. `env.unwrapped.save(path)` / `load(path)`
    checkpoint a running online env; the resumed run continues exactly as an uninterrupted one.

    ## Arguments

    ```python
    import gymnasium as gym
    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", reward="probe", render_mode="rgb_array")
    ```

    * `preset`: `"tiny"` (16x16) or `"micro"` (8x8); fixes model, data and default lr/rule/scale/T.
    * `mode`: `"episodic"` or `"online"`.
    * `task`: `"trousers"` (forget the trousers labelled 1) or `"erase-<digit>"` (forget every
      training image of that digit, the class-erasure setting of SFD).
    * `horizon`, `lr`, `rule`, `scale`, `batch_size`: default to the preset's `horizon`,
      `unlearn_lr`, `unlearn_rule`, `unlearn_scale`, `unlearn_batch`; for `erase-<digit>` tasks
      `lr`, `scale` and `batch_size` default to the preset's calibrated `erase_lr`, `erase_scale`
      and `erase_batch` (a constant policy erases the digit within the horizon on `tiny`,
      docs/headroom.md). Rules: `rescale`, `ratio`,
      `scale`, `clip` (see `unlearn_gym.objectives.update`).
    * `lambda_min`, `lambda_max`: the λ range, a strict sub-interval of (0, 1).
    * `action`: `"lambda"` or `"lambda+scale"`; `scale_range`: `(lo, hi)` of the second component.
    * `state`: `"update"` or `"exact"`; `reward`: `"siss"` or `"probe"`; `beta`: smoothness weight;
      `s`: forget scale of the reward's loss value.
    * `pairing`: `"drawn"` (default: condition the shared forward pass on the drawn component's
      label; works for every task, one forward pass of B) or `"same-label"` (pair each forget
      sample with a retain sample of its label: exact importance sampling, forward pass of 2B, not
      available for `erase-<digit>` with digit != 1). `x_from`: `"retain"` or `"full"` (see
      `PairSampler`).
    * `max_grad_norm` (1.0), `weight_decay` (0.0), `divergence_factor`, `reward_clip`,
      `probe_size` (default B), `checkpoint` (DDPM weights instead of the shipped ones),
      `data_ratio`, `data_seed`, `max_train_digits` (dataset build), `render_mode`
      (`"rgb_array"`), `render_cols`, `render_steps`.
    * `outcome` (True), `outcome_config` (sample counts, DDIM steps, noise seed, tolerance),
      `shaping` (see Rewards).
    * `instance`: a named benchmark instance (`unlearn_gym.envs.instances`): it fixes preset, task,
      contamination ratio, action space, model family, reward and the hyperparameters it names (passing one of
      those with another value is an error). `instances="SET:SPLIT"` or a list of names (through
      `gym.make`) returns an `InstanceSetEnv` that draws one instance per reset.
    * `data_ratio` also selects the shipped DDPM pretrained on that contamination (0.1 or 0.5).
    * `model`: `"ddpm"` (default) or `"cvae"`, the class-conditional VAE of METHOD.md §6b (the
      shipped `cvae-<preset>` weights; `SISSUnlearnVAE-v0`). Everything above holds for both: the
      VAE's SISS objective (`unlearn_gym.objectives.vae`) has one fixed noise level σ = 0.3 instead
      of a timestep, the same mixture, weights, terms and update rules, and its per-sample loss is
      its negative ELBO (reconstruction of x, resp. a, from m, plus 0.5 KL). `lr` and `scale`
      default to the VAE's own (`unlearn_gym.vae.CVAE_CONFIGS`: lr 1e-3, ratio ρ 0.5); the
      outcome score and `render` draw prior samples from the same fixed noise.
    * `device`: `"cpu"` (default), `"cuda"`, `"cuda:N"` or `"auto"`: where the model, its optimizer
      and the data live. Random numbers are drawn on the CPU from the env's generator on every
      device (the same batches, noise and timesteps; only floating-point arithmetic differs), and
      the outcome score and `render` classify CPU copies of the samples.

    ## Version History

    * v0: initial version; later additions that leave the default dynamics unchanged:
      `reward="outcome"`, `shaping`, `info["outcome"]`, `instance`/`instances`, the `data_ratio`
      0.5 model, strict argument checks, `model="cvae"` (and the `vae` instance set), `device`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        preset: str = "tiny",
        mode: str = "episodic",
        task: str = "trousers",
        horizon: int | None = None,
        lr: float | None = None,
        rule: str | None = None,
        scale: float | None = None,
        batch_size: int | None = None,
        lambda_min: float = 0.05,
        lambda_max: float = 0.95,
        action: str = "lambda",
        scale_range: tuple[float, float] | None = None,
        state: str = "update",
        reward: str | None = None,
        beta: float = 0.1,
        s: float = 0.0,
        pairing: str = "drawn",
        x_from: str = "retain",
        max_grad_norm: float = 1.0,
        weight_decay: float = 0.0,
        divergence_factor: float = 10.0,
        reward_clip: float = 10.0,
        probe_size: int | None = None,
        checkpoint: str | None = None,
        data_ratio: float = 0.1,
        data_seed: int = 0,
        max_train_digits: int | None = None,
        render_mode: str | None = None,
        render_cols: int = 8,
        render_steps: int = 10,
        outcome: bool = True,
        outcome_config: OutcomeConfig | dict[str, Any] | None = None,
        shaping: float = 0.0,
        instance: str | None = None,
        model: str = "ddpm",
        device: str | None = None,
    ):
        """Build the env (loads the preset's data and pretrained DDPM once; resets are in memory).

        :param preset: ``"tiny"`` or ``"micro"`` (or any preset with a ``checkpoint``).
        :param mode: ``"episodic"`` or ``"online"``.
        :param task: ``"trousers"`` or ``"erase-<digit>"``.
        :param horizon: steps per episode / online window (default: the preset's).
        :param lr: AdamW learning rate (default: the preset's ``unlearn_lr``).
        :param rule: update rule ``rescale``/``ratio``/``scale``/``clip`` (default: the preset's).
        :param scale: the rule's constant (default: the preset's ``unlearn_scale``).
        :param batch_size: pairs per step, B (default: the preset's ``unlearn_batch``).
        :param lambda_min: λ for action -1.
        :param lambda_max: λ for action +1.
        :param action: ``"lambda"`` or ``"lambda+scale"``.
        :param scale_range: ``(lo, hi)`` of the second action component (default scale/10, 10·scale).
        :param state: ``"update"`` or ``"exact"``.
        :param reward: ``"siss"`` (default; an instance's own default otherwise), ``"probe"`` or
            ``"outcome"``.
        :param beta: weight of the smoothness penalty β (λ_t - λ_{t-1})².
        :param s: forget scale s >= 0 of the reward's loss value.
        :param pairing: ``"drawn"`` or ``"same-label"``.
        :param x_from: ``"retain"`` or ``"full"``.
        :param max_grad_norm: total gradient-norm clip of each update.
        :param weight_decay: AdamW weight decay.
        :param divergence_factor: retain-loss multiple that counts as divergence.
        :param reward_clip: bound on the reward's loss term.
        :param probe_size: pairs in the probe batch (default B).
        :param checkpoint: DDPM weights to start from instead of the shipped ones.
        :param data_ratio: trousers per real "1" of the dataset build.
        :param data_seed: seed of the dataset build.
        :param max_train_digits: optional cap on training digits of the dataset build.
        :param render_mode: ``None`` or ``"rgb_array"``.
        :param render_cols: samples per label row of the rendered grid.
        :param render_steps: DDIM steps of the rendered samples.
        :param outcome: score the model at every episode end (``info["outcome"]``); needed by
            ``reward="outcome"``.
        :param outcome_config: an :class:`~unlearn_gym.envs.outcome.OutcomeConfig` (or its fields
            as a dict): sample counts, DDIM steps, noise seed, tolerance.
        :param shaping: ``reward="outcome"`` only: weight k of the potential-based shaping
            ``Φ(θ) = -k L_SISS(θ; 0.5)`` on the fixed probe batch (0 = terminal reward only).
        :param instance: a named benchmark instance (see :mod:`unlearn_gym.envs.instances`); it fixes
            preset, task, data_ratio, action and the hyperparameters it names.
        :param model: model family: ``"ddpm"`` or ``"cvae"`` (the class-conditional VAE).
        :param device: where the model and its data live: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``
            or ``"auto"``. Random numbers are drawn on the CPU from the env's generator on any device,
            and scoring (outcome, render) runs on the CPU (:mod:`unlearn_gym.device`).
        """
        if instance is not None:
            from unlearn_gym.envs.instances import apply_instance

            kw = apply_instance(instance, dict(
                preset=preset, task=task, horizon=horizon, lr=lr, rule=rule, scale=scale,
                batch_size=batch_size, action=action, scale_range=scale_range, data_ratio=data_ratio,
                reward=reward, model=model))
            preset, task, horizon, lr = kw["preset"], kw["task"], kw["horizon"], kw["lr"]
            rule, scale, batch_size, action = kw["rule"], kw["scale"], kw["batch_size"], kw["action"]
            scale_range, data_ratio, reward, model = kw["scale_range"], kw["data_ratio"], kw["reward"], kw["model"]
        reward = "siss" if reward is None else reward
        check_env_arguments(
            horizon=horizon, batch_size=batch_size, probe_size=probe_size, beta=beta, s=s,
            reward_clip=reward_clip, divergence_factor=divergence_factor, max_grad_norm=max_grad_norm,
            lr=lr, weight_decay=weight_decay, render_cols=render_cols, render_steps=render_steps,
            max_train_digits=max_train_digits,
        )
        if not (math.isfinite(shaping) and shaping >= 0):
            raise ValueError(f"shaping must be a finite number >= 0, got {shaping!r}")
        if reward == "outcome" and not outcome:
            raise ValueError("reward='outcome' needs outcome=True (the terminal reward is the outcome score)")
        if shaping and reward != "outcome":
            raise ValueError(f"shaping applies to reward='outcome' only, got reward={reward!r}")
        p = get_preset(preset)
        for name, val, allowed in (("mode", mode, MODES), ("state", state, STATES),
                                   ("reward", reward, REWARDS), ("action", action, ACTIONS)):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {val!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 0.0 < lambda_min < lambda_max < 1.0:
            raise ValueError(f"need 0 < lambda_min < lambda_max < 1, got {lambda_min}, {lambda_max}")
        dev = resolve_device(device)
        erase = task.startswith("erase-")
        if model not in MODEL_FAMILIES:
            raise ValueError(f"model must be one of {MODEL_FAMILIES}, got {model!r}")
        if model == "cvae":  # the VAE's own defaults (measured: docs/vae.md)
            from unlearn_gym.vae import cvae_config

            vae_defaults = cvae_config(p)
            lr = vae_defaults.unlearn_lr if lr is None else lr
            if scale is None and rule in (None, p.unlearn_rule):
                scale = vae_defaults.unlearn_scale
        rule = p.unlearn_rule if rule is None else rule
        if scale is None:  # class erasure needs a stronger forget push (calibrated, docs/headroom.md)
            scale = p.erase_scale if erase and rule == p.unlearn_rule else p.unlearn_scale
        if lr is None:
            lr = p.erase_lr if erase else p.unlearn_lr
        if batch_size is None:
            batch_size = p.erase_batch if erase else p.unlearn_batch
        scale = float(scale)
        check_rule(rule, scale)
        if rule == "erasediff":
            raise ValueError("the erasediff rule belongs to EraseDiff terms, not to SISS")
        if action == "lambda+scale":
            scale_range = (scale / 10.0, scale * 10.0) if scale_range is None else scale_range
            if not 0.0 < float(scale_range[0]) <= float(scale_range[1]) < math.inf:
                raise ValueError(f"scale_range must satisfy 0 < lo <= hi < inf, got {scale_range}")
            scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.config: dict[str, Any] = dict(
            preset=p.name, mode=mode, task=task, horizon=int(horizon or p.horizon),
            lr=float(lr), rule=rule, scale=scale,
            batch_size=int(batch_size or p.unlearn_batch), lambda_min=float(lambda_min),
            lambda_max=float(lambda_max), action=action, scale_range=scale_range, state=state,
            reward=reward, beta=float(beta), s=float(s), pairing=pairing, x_from=x_from,
            max_grad_norm=float(max_grad_norm), weight_decay=float(weight_decay),
            divergence_factor=float(divergence_factor), reward_clip=float(reward_clip),
            probe_size=int(probe_size or batch_size or p.unlearn_batch), checkpoint=checkpoint,
            data_ratio=float(data_ratio), data_seed=int(data_seed), max_train_digits=max_train_digits,
            shaping=float(shaping), instance=instance, model=model, device=str(dev),
        )
        c = self.config
        self.horizon = c["horizon"]
        self.render_mode = render_mode
        self.render_cols, self.render_steps = int(render_cols), int(render_steps)
        self.action_space = spaces.Box(-1.0, 1.0, (2 if action == "lambda+scale" else 1,), np.float32)
        low, high = observation_bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

        data = build_contaminated_mnist(p.name, ratio=c["data_ratio"], seed=c["data_seed"],
                                        max_train_digits=max_train_digits)
        self.sampler = PairSampler(*task_split(data, task), batch_size=c["batch_size"],
                                   pairing=pairing, x_from=x_from, device=dev)
        self.schedule = family_noise(model)  # the DDPM's schedule, or the VAE's fixed noise level
        self._siss = objectives_for(self.schedule).siss
        self.model = load_pretrained(p.name, checkpoint, ratio=c["data_ratio"], model=model, device=dev).train()
        self._theta0 = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        # fixed, seed-independent quantities at θ_0 (constants, not episode randomness)
        self.probe = Probe(self.sampler, self.schedule, c["probe_size"], p.resolution)
        self._ref_retain = reference_retain_loss(self.model, self.schedule, self.sampler)
        self._obs0 = initial_state(self.model, self.schedule, self.sampler, state, c["s"])
        self._render_noise = torch.randn(10 * self.render_cols, 1, p.resolution, p.resolution,
                                         generator=torch.Generator().manual_seed(0))
        self.scorer: OutcomeScorer | None = None
        if outcome:
            cfg = outcome_config
            if not isinstance(cfg, OutcomeConfig):
                cfg = OutcomeConfig(**(cfg or {}))
            self.scorer = OutcomeScorer(self.model, load_classifier(p.name), task, cfg)
        self._phi0 = -c["shaping"] * self.probe.loss(self.model, 0.5, c["s"]) if c["shaping"] else 0.0
        self._phi = self._phi0
        self._gen = torch.Generator()
        self._needs_restore, self._seeded = True, False
        self._t, self.global_step, self._lam_prev = 0, 0, 0.5
        self._last, self._retain_ema = self._obs0, self._ref_retain

    # ----------------------------------------------------------------------------------------
    def _restore(self) -> None:
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(self._theta0[k])
        self.optimizer.state.clear()
        self._lam_prev, self._last, self._needs_restore = 0.5, self._obs0, False
        self._retain_ema = self._ref_retain
        self._phi = self._phi0

    def _obs(self) -> np.ndarray:
        l_r, l_f, g_r, g_f = self._last
        return encode_observation(l_r, l_f, g_r, g_f, self._lam_prev, self._t / self.horizon)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode (episodic: restore θ_0) or the next window of the run (online).

        :param seed: seeds ``np_random`` and the torch generator drawn from it; in online mode an
            explicit seed also starts a new run from θ_0.
        :param options: unused.
        """
        super().reset(seed=seed)
        restart = seed is not None or not self._seeded
        if restart:
            self._gen.manual_seed(int(self.np_random.integers(0, 2**63 - 1)))
            self._seeded, self.global_step = True, 0
        restored = restart or self._needs_restore or self.config["mode"] == "episodic"
        if restored:
            self._restore()
        self._t = 0
        info = {"step": 0, "global_step": self.global_step, "lambda": self._lam_prev,
                "diverged": False, "restored": restored}
        if self.config["instance"] is not None:
            info["instance"] = self.instance_info()
        return self._obs(), info

    def step(self, action):
        """One SISS update with the λ (and forget scale) the action selects.

        :param action: array in ``[-1, 1]^d`` (clipped; NaN raises ``ValueError``).
        """
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        c = self.config
        lam, step_scale = decode_action(action, self.action_space.shape[0],
                                        (c["lambda_min"], c["lambda_max"]), c["scale_range"])
        scale = c["scale"] if step_scale is None else step_scale
        terms = self._siss(self.model, self.schedule, self.sampler.sample(self._gen), lam,
                           s=c["s"], generator=self._gen)
        upd = apply_update(self.model, self.optimizer, terms, c["rule"], scale,
                           max_grad_norm=c["max_grad_norm"])
        self._t += 1
        self.global_step += 1
        info: dict[str, Any] = {"lambda": lam, "scale": scale, **upd.as_dict()}
        loss = upd.loss
        if c["reward"] == "probe":
            loss = self.probe.loss(self.model, lam, c["s"])
            info["probe_loss"] = loss
        if c["state"] == "exact":
            self._last = exact_state(self.model, self.schedule, self.sampler, self._gen)
            info["exact_state"] = dict(zip(("L_r", "L_f", "grad_norm_r", "grad_norm_f"), self._last))
        else:
            self._last = (upd.L_r, upd.L_f, upd.grad_norm_r, upd.grad_norm_f)
        watched = (upd.loss, upd.L_r, upd.L_f, upd.total_grad_norm, loss, *self._last)
        self._retain_ema = 0.9 * self._retain_ema + 0.1 * upd.L_r
        diverged = not all(math.isfinite(v) for v in watched) or (
            self._retain_ema > c["divergence_factor"] * self._ref_retain
        )
        truncated = self._t >= self.horizon and not diverged
        smooth = -c["beta"] * (lam - self._lam_prev) ** 2
        paper_loss_term = _clipped_loss_term(upd.loss, c["reward_clip"])  # the paper's, whatever the reward
        loss_term = _clipped_loss_term(loss, c["reward_clip"]) if c["reward"] == "probe" else paper_loss_term
        outcome_term = shaping_term = 0.0
        if (diverged or truncated) and self.scorer is not None:
            info["outcome"] = self.score()
        if c["reward"] == "outcome":
            loss_term = 0.0
            if diverged or truncated:
                outcome_term = info["outcome"]["outcome"]
            if c["shaping"]:
                phi = 0.0 if (diverged or truncated) else -c["shaping"] * self.probe.loss(self.model, 0.5, c["s"])
                shaping_term, self._phi = phi - self._phi, phi
        reward = loss_term + outcome_term + shaping_term + smooth
        self._lam_prev = lam
        self._needs_restore = self._needs_restore or diverged
        info.update(reward_terms={"loss": loss_term, "outcome": outcome_term, "shaping": shaping_term,
                                  "smoothness": smooth},
                    paper_reward=paper_loss_term + smooth, step=self._t, global_step=self.global_step,
                    retain_ema=self._retain_ema, diverged=diverged)
        return self._obs(), float(reward), diverged, truncated, info

    def score(self) -> dict[str, Any]:
        """The outcome score of the current model (see :mod:`unlearn_gym.envs.outcome`)."""
        if self.scorer is None:
            raise RuntimeError("this env was made with outcome=False")
        out = self.scorer.score(self.model)
        if self.config["instance"] is not None:
            out["instance"] = self.instance_info()
        return out

    def instance_info(self) -> dict[str, Any]:
        """Name, set, split and version of this env's benchmark instance (``{}`` without one)."""
        from unlearn_gym.envs.instances import instance_info

        return instance_info(self.config["instance"]) if self.config["instance"] else {}

    # ----------------------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """A uint8 ``H x W x 3`` grid of DDIM (VAE: prior) samples of the current model, one row per label 0-9."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        labels = torch.arange(10).repeat_interleave(self.render_cols)
        imgs = sample_images(self.model, self.schedule, labels, self._render_noise, steps=self.render_steps)
        return image_grid(imgs, nrow=self.render_cols, scale=max(1, 32 // imgs.shape[-1]))


def _clipped_loss_term(loss: float, clip: float) -> float:
    """``-loss`` clipped to ``±clip``; a non-finite loss counts as ``+clip`` (reward ``-clip``)."""
    return -min(clip, max(-clip, loss)) if math.isfinite(loss) else -clip
