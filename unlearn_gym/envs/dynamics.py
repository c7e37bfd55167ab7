"""The dynamics of an unlearning run, as functions of one :class:`~unlearn_gym.envs.state.RunState`.

:class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` (one run) and
:class:`~unlearn_gym.envs.vector.SISSUnlearnVectorEnv` (N runs) both step through
:func:`step_state` and reset through :func:`reset_state`: one implementation of the MDP. What a run
only reads (data, sampler, noise schedule, probe batch, θ_0 and the constants measured there, the
outcome scorer) is a :class:`Shared` bundle, built once by :func:`build_shared` and shared by every
run of the same settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unlearn_gym.data import build_contaminated_mnist, task_split
from unlearn_gym.envs.encoding import FEATURE_TABLES, decode_action, encode_observation
from unlearn_gym.envs.estimators import Probe, exact_state, initial_state, reference_retain_loss, update_state
from unlearn_gym.envs.instances import instance_info
from unlearn_gym.envs.outcome import OutcomeScorer
from unlearn_gym.envs.settings import EnvSettings
from unlearn_gym.envs.state import Origin, RunState
from unlearn_gym.objectives import PairSampler, family_noise, siss_step
from unlearn_gym.objectives.update import UpdateResult
from unlearn_gym.pretrained import load_classifier, load_pretrained
from unlearn_gym.rng import seeded_global_rng

#: the paper's smoothness weight β (``info["paper_reward"]`` uses it under ``reward="outcome"``)
PAPER_BETA = 0.1


@dataclass
class Shared:
    """What every run of one :class:`EnvSettings` reads and none changes.

    :param settings: the resolved settings.
    :param sampler: the task's pair sampler (training data).
    :param schedule: the DDPM's noise schedule, or the VAE's noise level.
    :param probe: the fixed probe batch.
    :param origin: θ_0 and the constants measured there.
    :param scorer: the outcome scorer (``None`` with ``outcome=False``).
    :param render_noise: fixed noise of the rendered grid.
    :param action_dim: components of an action (1 or 2).
    """

    settings: EnvSettings
    sampler: PairSampler
    schedule: Any
    probe: Probe
    origin: Origin
    scorer: OutcomeScorer | None
    render_noise: torch.Tensor
    action_dim: int


def build_shared(c: EnvSettings) -> tuple[Shared, torch.nn.Module, torch.optim.Optimizer]:
    """Load the data, the pretrained model, the probe and the scorer of ``c`` (no global-RNG side effects).

    :param c: resolved settings.
    :returns: the shared bundle, the loaded model (at θ_0, in train mode) and its fresh AdamW.
    """
    dev = torch.device(c.device)
    res = c.preset.resolution
    with seeded_global_rng(0):  # nothing built here may move the caller's global RNG
        data = build_contaminated_mnist(c.preset.name, ratio=c.data_ratio, seed=c.data_seed,
                                        max_train_digits=c.max_train_digits)
        sampler = PairSampler(*task_split(data, c.task), batch_size=c.batch_size,
                              pairing=c.pairing, x_from=c.x_from, device=dev)
        schedule = family_noise(c.model)  # the DDPM's schedule, or the VAE's fixed noise level
        model = load_pretrained(c.preset.name, c.checkpoint, ratio=c.data_ratio, model=c.model,
                                device=dev).train()
        theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
        optimizer = make_optimizer(c, model)
        # fixed, seed-independent quantities at θ_0 (constants, not episode randomness)
        probe = Probe(sampler, schedule, c.probe_size, res)
        phi0 = -c.shaping * probe.loss(model, 0.5, c.s) if c.shaping else 0.0
        origin = Origin(theta0, initial_state(model, schedule, sampler, c.state, c.s),
                        reference_retain_loss(model, schedule, sampler), phi0, c.scale)
        render_noise = torch.randn(10 * c.render_cols, 1, res, res, generator=torch.Generator().manual_seed(0))
        scorer = (OutcomeScorer(model, load_classifier(c.preset.name), c.task, c.outcome_config)
                  if c.outcome else None)
    shared = Shared(c, sampler, schedule, probe, origin, scorer, render_noise,
                    2 if c.action == "lambda+scale" else 1)
    return shared, model, optimizer


def make_optimizer(c: EnvSettings, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The run's AdamW (learning rate and weight decay of ``c``).

    :param c: resolved settings.
    :param model: the model it updates.
    """
    return torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)


def observe(shared: Shared, st: RunState) -> np.ndarray:
    """The observation of a run.

    :param shared: the run's shared bundle.
    :param st: its state.
    """
    c = shared.settings
    q = {**st.quantities, "lambda_prev": st.lam_prev, "progress": st.t / c.horizon}
    if c.observation != "paper":
        q.update({f"{k}_0": v for k, v in shared.origin.quantities.items()}, scale_prev=st.scale_prev,
                 scale=c.scale, t=st.t, horizon=c.horizon, batch_size=c.batch_size, lr=c.lr,
                 data_ratio=c.data_ratio)
    return encode_observation(q, FEATURE_TABLES[c.observation])  # by name: Shared pickles


def reset_state(shared: Shared, st: RunState, np_random: np.random.Generator,
                explicit_seed: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Reset a run (episodic: restore θ_0; online: the next window), after ``np_random`` was (re)seeded.

    :param shared: the run's shared bundle.
    :param st: its state (changed in place).
    :param np_random: the run's numpy generator (draws the torch generator's seed on a restart).
    :param explicit_seed: the reset was given a seed (online: a new run from θ_0).
    """
    c = shared.settings
    restart = explicit_seed or not st.seeded
    if restart:
        st.generator.manual_seed(int(np_random.integers(0, 2**63 - 1)))
        st.seeded, st.global_step = True, 0
    restored = restart or st.needs_restore or c.mode == "episodic"
    if restored:
        st.restore(shared.origin)
    st.t, st.done = 0, False
    info = {"step": 0, "global_step": st.global_step, "lambda": st.lam_prev,
            "diverged": False, "restored": restored}
    if c.instance is not None:
        info["instance"] = instance_info(c.instance)
    return observe(shared, st), info


def score_state(shared: Shared, st: RunState) -> dict[str, Any]:
    """The outcome score of a run's current model (see :mod:`unlearn_gym.envs.outcome`).

    :param shared: the run's shared bundle.
    :param st: its state.
    """
    return score_states(shared, [st])[0]


def score_states(shared: Shared, states: list[RunState]) -> list[dict[str, Any]]:
    """:func:`score_state` of several runs of one bundle at once (:meth:`OutcomeScorer.score_many`).

    :param shared: their shared bundle.
    :param states: the runs.
    """
    if shared.scorer is None:
        raise RuntimeError("this env was made with outcome=False")
    outs = shared.scorer.score_many([st.model for st in states])
    if shared.settings.instance is not None:
        for out in outs:
            out["instance"] = instance_info(shared.settings.instance)
    return outs


def step_state(shared: Shared, st: RunState, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
    """One SISS update of a run with the λ (and forget scale) the action selects.

    :param shared: the run's shared bundle.
    :param st: its state (changed in place).
    :param action: array in ``[-1, 1]^d`` (clipped; NaN raises ``ValueError``).
    :returns: ``(observation, reward, terminated, truncated, info)`` as ``gym.Env.step``.
    """
    lam, scale = decide(shared, st, action)
    c = shared.settings
    upd = siss_step(st.model, st.optimizer, shared.schedule, shared.sampler.sample(st.generator), lam,
                    rule=c.rule, scale=scale, s=c.s, generator=st.generator, max_grad_norm=c.max_grad_norm)
    return finish_step(shared, st, upd, lam, scale)


def decide(shared: Shared, st: RunState, action: Any) -> tuple[float, float]:
    """``(λ, forget scale)`` of an action, after checking the run may step.

    :param shared: the run's shared bundle.
    :param st: its state.
    :param action: array in ``[-1, 1]^d`` (clipped; NaN raises ``ValueError``).
    """
    c = shared.settings
    if not st.seeded:
        raise RuntimeError("call reset() before step()")
    if st.done:
        raise RuntimeError("the episode has ended (terminated or truncated): call reset() before stepping"
                           " again (in online mode a reset continues the run)")
    lam, step_scale = decode_action(action, shared.action_dim, (c.lambda_min, c.lambda_max), c.scale_range)
    return lam, (c.scale if step_scale is None else step_scale)


def next_retain_ema(st: RunState, upd: UpdateResult) -> float:
    """The run's retain-loss EMA after ``upd`` (decay 0.9: what the divergence check watches).

    :param st: the run's state before the update is recorded.
    :param upd: the update just made.
    """
    return 0.9 * st.retain_ema + 0.1 * upd.L_r


def episode_end(shared: Shared, st: RunState, upd: UpdateResult, loss: float | None = None,
                quantities: dict[str, float] | None = None) -> tuple[bool, bool]:
    """``(diverged, truncated)``: whether the update ``upd`` ends the run's episode (before
    :func:`finish_step` records it): a non-finite value or a retain-loss EMA above
    ``divergence_factor`` × θ_0's; else the horizon reached.

    :param shared: the run's shared bundle.
    :param st: its state before the update is recorded.
    :param upd: the update just made.
    :param loss: the reward's loss (default: the update's; ``reward="probe"``: the probe's).
    :param quantities: the new state quantities (default: those of ``upd``, ``state="estimated"``).
    """
    c = shared.settings
    if quantities is None:
        quantities = update_state(upd.L_r, upd.L_f, upd.grad_norm_r, upd.grad_norm_f, upd.grad_cosine)
    loss = upd.loss if loss is None else loss
    watched = (upd.loss, upd.L_r, upd.L_f, upd.total_grad_norm, loss, *quantities.values())
    diverged = not all(math.isfinite(v) for v in watched) or (
        next_retain_ema(st, upd) > c.divergence_factor * shared.origin.retain_loss)
    return diverged, st.t + 1 >= c.horizon and not diverged


def finish_step(shared: Shared, st: RunState, upd: UpdateResult, lam: float, scale: float,
                score: dict[str, Any] | None = None) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
    """Everything a step does after its update: state, divergence check, reward, outcome, counters.

    :param shared: the run's shared bundle.
    :param st: its state (changed in place).
    :param upd: the update just made.
    :param lam: its λ.
    :param scale: its forget scale.
    :param score: the outcome score of the run's model when the episode ends, if already computed
        (the vector env scores the copies that end together at once); ``None``: computed here.
    """
    c = shared.settings
    info: dict[str, Any] = {"lambda": lam, "scale": scale, **upd.as_dict()}
    loss = upd.loss
    if c.reward == "probe":
        loss = shared.probe.loss(st.model, lam, c.s)
        info["probe_loss"] = loss
    if c.state == "exact":
        quantities = exact_state(st.model, shared.schedule, shared.sampler, st.generator)
        info["exact_state"] = dict(quantities)
    else:
        quantities = update_state(upd.L_r, upd.L_f, upd.grad_norm_r, upd.grad_norm_f, upd.grad_cosine)
    diverged, truncated = episode_end(shared, st, upd, loss, quantities)
    st.quantities = quantities
    st.t += 1
    st.global_step += 1
    st.retain_ema = next_retain_ema(st, upd)
    smooth = -c.beta * (lam - st.lam_prev) ** 2
    paper_beta = PAPER_BETA if c.reward == "outcome" else c.beta  # the paper's reward, whatever this one is
    paper_reward = clipped_loss_term(upd.loss, c.reward_clip) - paper_beta * (lam - st.lam_prev) ** 2
    loss_term = clipped_loss_term(loss, c.reward_clip)
    outcome_term = shaping_term = 0.0
    if (diverged or truncated) and shared.scorer is not None:
        info["outcome"] = score if score is not None else score_state(shared, st)
    if c.reward == "outcome":
        loss_term = 0.0
        if diverged or truncated:
            outcome_term = info["outcome"]["outcome"]
        if c.shaping:
            phi = 0.0 if (diverged or truncated) else -c.shaping * shared.probe.loss(st.model, 0.5, c.s)
            shaping_term, st.phi = phi - st.phi, phi
    reward = loss_term + outcome_term + shaping_term + smooth
    st.lam_prev, st.scale_prev = lam, scale
    st.needs_restore = st.needs_restore or diverged
    st.done = diverged or truncated
    info.update(reward_terms={"loss": loss_term, "outcome": outcome_term, "shaping": shaping_term,
                              "smoothness": smooth},
                paper_reward=paper_reward, step=st.t, global_step=st.global_step,
                retain_ema=st.retain_ema, diverged=diverged)
    return observe(shared, st), float(reward), diverged, truncated, info


def clipped_loss_term(loss: float, clip: float) -> float:
    """``-loss`` clipped to ``±clip``; a non-finite loss counts as ``+clip`` (reward ``-clip``)."""
    return -min(clip, max(-clip, loss)) if math.isfinite(loss) else -clip
