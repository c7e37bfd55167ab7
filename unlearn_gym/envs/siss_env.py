"""``SISSUnlearnEnv``: choosing the SISS mixture weight λ, one gradient update per step."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from unlearn_gym.diffusion.one_step import sample_images
from unlearn_gym.envs.dynamics import (
    PAPER_BETA,
    build_shared,
    observe,
    reset_state,
    score_state,
    step_state,
)
from unlearn_gym.envs.encoding import FEATURE_TABLES, observation_bounds, observation_table
from unlearn_gym.envs.instances import instance_info
from unlearn_gym.envs.persistence import CheckpointMixin
from unlearn_gym.envs.settings import EnvSettings, resolve_env_settings
from unlearn_gym.envs.state import RunState
from unlearn_gym.imaging import image_grid

__all__ = ["PAPER_BETA", "SISSUnlearnEnv"]


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
    λ, decides the forget/retain trade-off (docs/method.md §6).

    ## Observation Space

    `Box(low, high, (6,), float32)`:

    {observation_table}

    `observation="unitless"` (an extension for controllers and for transfer across instances) keeps
    that layout with each loss and norm as its log10 ratio to θ_0's value, and appends the cosine
    between the two gradients, the forget scale used last, the remaining budget and instance
    features (`Box(low, high, (12,), float32)`; the table is
    `unlearn_gym.envs.encoding.UNITLESS_FEATURES`):

    {unitless_table}

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
    episode's end (truncation or termination), the **outcome score** in [-1, 1]. β defaults to 0
    here, so the return equals the outcome score unless a smoothness penalty (`beta > 0`) or
    shaping is asked for (forgetting that
    counts only while the retain side stays within a tolerance; see
    `unlearn_gym.envs.outcome`). Optional potential-based shaping (`shaping=k > 0`, Ng et al. 1999):
    `F_t = Φ(θ_{t+1}) - Φ(θ_t)` with `Φ(θ) = -k L_SISS(θ; λ=0.5)` on the fixed probe batch and
    Φ = 0 at the episode's end, so the shaping terms of an episode sum to the constant `-Φ(θ_0)`
    and the ranking of policies is unchanged; it costs one probe forward pass per step.

    `info["reward_terms"]` holds `loss`, `outcome`, `shaping` and `smoothness` (zero where the
    reward mode does not use them); they sum to the reward. Whatever the reward,
    `info["paper_reward"]` is the paper's step reward (the `reward="siss"` value; with β = 0.1 under
    `reward="outcome"`), so the paper's
    return can be reported beside any other; with
    `outcome=True` (default) the final step's `info["outcome"]` holds the outcome score (forget
    score, retain mean / worst confident accuracy, one-rate, the combined scalar, standard errors
    and the score's version), measured on fixed noise (common random numbers across episodes and
    policies).

    ## Starting State

    θ_0 is the shipped pretrained EMA model of the preset (or `checkpoint`), a fresh AdamW state and
    λ_prev = 0.5. Episodic resets restore them from memory (no disk reads).

    ## Episode End

    Stepping after `terminated` or `truncated` raises `RuntimeError`: call `reset()` first.

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

    Every argument is a field of :class:`~unlearn_gym.envs.settings.EnvSettings` (or of the run's
    :class:`~unlearn_gym.settings.RunSettings`), where its default is decided and documented;
    ``SISSUnlearnEnv(settings=...)`` takes a resolved object instead. ``env.unwrapped.settings`` is
    the resolved object, ``env.unwrapped.config`` its plain-value dict.

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
    * `model`: `"ddpm"` (default) or `"cvae"`, the class-conditional VAE of docs/method.md §6b (the
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
      Contract fixes (the docs' promises kept): under `reward="outcome"` β defaults to 0 (the return
      is the outcome; it was 0.1, a smoothness penalty at every step); stepping after the episode's
      end raises instead of training on; an explicit value that conflicts with an instance's `task`,
      `data_ratio` or `action` is refused; an online save keeps the shaping potential;
      `observation="unitless"` (the default observation is unchanged); `info["grad_cosine"]`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, settings: EnvSettings | None = None, *, render_mode: str | None = None, **kwargs: Any):
        """Build the env (loads the preset's data and pretrained model once; resets are in memory).

        :param settings: resolved settings (:func:`~unlearn_gym.envs.settings.resolve_env_settings`);
            ``None``: resolve them from ``kwargs``.
        :param render_mode: ``None`` or ``"rgb_array"``.
        :param kwargs: the arguments of :func:`~unlearn_gym.envs.settings.resolve_env_settings`
            (``preset``, ``task``, ``model``, ``instance`` and any field of
            :class:`~unlearn_gym.envs.settings.EnvSettings`, see "Arguments").
        """
        if settings is None:
            settings = resolve_env_settings(**kwargs)
        elif kwargs:
            raise ValueError(f"pass either settings or keyword arguments, not both (got {sorted(kwargs)})")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.settings = c = settings
        self.horizon = c.horizon
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, (2 if c.action == "lambda+scale" else 1,), np.float32)
        low, high = observation_bounds(self.features)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        # data, sampler, probe, θ_0 and scorer: read by the run, never changed (dynamics.Shared)
        self.shared, model, optimizer = build_shared(c)
        self.state = RunState(model, optimizer, torch.Generator())
        self.state.restore(self.origin)
        self.state.needs_restore = True

    # ----------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The resolved settings as plain values (:meth:`EnvSettings.to_dict`)."""
        return self.settings.to_dict()

    @property
    def features(self):
        """The observation's feature table (looked up by name: its encoders are lambdas, which do not pickle)."""
        return FEATURE_TABLES[self.settings.observation]

    @property
    def sampler(self):
        """The task's pair sampler (training data)."""
        return self.shared.sampler

    @property
    def schedule(self):
        """The DDPM's noise schedule, or the VAE's noise level."""
        return self.shared.schedule

    @property
    def probe(self):
        """The fixed probe batch."""
        return self.shared.probe

    @property
    def origin(self):
        """θ_0 and the constants measured there."""
        return self.shared.origin

    @property
    def scorer(self):
        """The outcome scorer (``None`` with ``outcome=False``)."""
        return self.shared.scorer

    @property
    def model(self) -> torch.nn.Module:
        """The model being unlearned (θ of the current run)."""
        return self.state.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The run's AdamW optimizer."""
        return self.state.optimizer

    @property
    def global_step(self) -> int:
        """Steps since the run last started from θ_0."""
        return self.state.global_step

    def _obs(self) -> np.ndarray:
        return observe(self.shared, self.state)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode (episodic: restore θ_0) or the next window of the run (online).

        :param seed: seeds ``np_random`` and the torch generator drawn from it; in online mode an
            explicit seed also starts a new run from θ_0.
        :param options: ``None`` or ``{}``; ``{"instance": NAME}`` only names this env's own instance
            (drawing instances per reset needs ``instances=``: :class:`~unlearn_gym.envs.multi.InstanceSetEnv`).
        :raises ValueError: an unknown option, or an instance this env was not made with.
        """
        check_reset_options(options, self.settings.instance)
        super().reset(seed=seed)
        return reset_state(self.shared, self.state, self.np_random, seed is not None)

    def step(self, action):
        """One SISS update with the λ (and forget scale) the action selects.

        :param action: array in ``[-1, 1]^d`` (clipped; NaN raises ``ValueError``).
        """
        return step_state(self.shared, self.state, action)

    def score(self) -> dict[str, Any]:
        """The outcome score of the current model (see :mod:`unlearn_gym.envs.outcome`)."""
        return score_state(self.shared, self.state)

    def instance_info(self) -> dict[str, Any]:
        """Name, set, split and version of this env's benchmark instance (``{}`` without one)."""

        return instance_info(self.settings.instance) if self.settings.instance else {}

    # ----------------------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """A uint8 ``H x W x 3`` grid of DDIM (VAE: prior) samples of the current model, one row per label 0-9."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        cols = self.settings.render_cols
        labels = torch.arange(10).repeat_interleave(cols)
        imgs = sample_images(self.model, self.schedule, labels, self.shared.render_noise,
                             steps=self.settings.render_steps)
        return image_grid(imgs, nrow=cols, scale=max(1, 32 // imgs.shape[-1]))


def check_reset_options(options: dict[str, Any] | None, instance: str | None) -> None:
    """Refuse reset options a single-instance env cannot honour, saying what to use instead.

    :param options: the ``reset`` options.
    :param instance: the env's own instance name (``None``: made without one).
    """
    options = dict(options or {})
    name = options.pop("instance", instance)
    if options:
        raise ValueError(f"unknown reset options {sorted(options)}; this env knows only 'instance'")
    if name != instance:
        raise ValueError(f"reset(options={{'instance': {name!r}}}) on an env made with instance={instance!r}:"
                         " a single env plays one instance; make it with instances=[...] (or 'SET:SPLIT')"
                         " to choose one per reset")


SISSUnlearnEnv.__doc__ = (SISSUnlearnEnv.__doc__ or "").replace(
    "{observation_table}", observation_table().replace("\n", "\n    ")).replace(
    "{unitless_table}", observation_table(FEATURE_TABLES["unitless"]).replace("\n", "\n    "))

