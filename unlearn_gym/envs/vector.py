"""``SISSUnlearnVectorEnv``: N unlearning runs in one process, loading shared once.

``gym.make_vec(id, num_envs=N)`` builds it for the registered ids (their ``vector_entry_point``;
``vectorization_mode="sync"``/``"async"`` still give gymnasium's ``SyncVectorEnv`` /
``AsyncVectorEnv`` of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv`). It follows gymnasium's
``CartPoleVectorEnv``: batched spaces, ``single_observation_space`` / ``single_action_space``,
``autoreset_mode`` NEXT_STEP (the step after a copy's episode ends resets that copy: reward 0,
the reset's observation and info), infos as a dict of arrays with a ``_key`` mask
(``VectorEnv._add_info``).

What a run only reads (data, sampler, noise schedule, probe batch, θ_0 and its constants, outcome
scorer: :class:`~unlearn_gym.envs.dynamics.Shared`) is held once per settings (per instance with
``instances=``, built lazily the first time a copy draws the instance). Each copy owns its
:class:`~unlearn_gym.envs.state.RunState`: its model (a copy of the pretrained one, restored from
the shared θ_0), AdamW state, torch generator, update-rule norms, clipping, divergence check and
counters. A copy resets, decides its action and finishes its step (state, divergence check,
reward, outcome) through the very functions the single env uses (:mod:`unlearn_gym.envs.dynamics`).
The update itself is either the single env's (``batched=False``: copies in a loop, so copy i reset
with seed s follows the trajectory of ``gym.make(id)`` reset with seed s bit-identically) or one
``torch.func`` computation for the copies of one bundle stepping together (``batched=True``,
:mod:`unlearn_gym.envs.batched`: the same random numbers, equal within float tolerance);
``batched="auto"`` (default) batches where ``benchmarks/vector_speed.py`` measured it to pay
(:meth:`SISSUnlearnVectorEnv.use_batched`; docs/vector.md has the speeds). Outcome scores are
computed per copy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from unlearn_gym.envs.batched import StackedRuns, batched_siss_update, supports
from unlearn_gym.envs.dynamics import (
    Shared,
    build_shared,
    decide,
    episode_end,
    finish_step,
    make_optimizer,
    reset_state,
    score_state,
    score_states,
    step_state,
)
from unlearn_gym.envs.encoding import FEATURE_TABLES, observation_bounds
from unlearn_gym.envs.instances import instance_set_arguments
from unlearn_gym.envs.settings import EnvSettings, resolve_env_settings
from unlearn_gym.envs.state import RunState
from unlearn_gym.objectives import siss_step

#: ``batched="auto"``: the fewest copies of one bundle stepped as one batched update (measured: 3 pay
#: 1.47-1.80x the loop in every run, 2 only 1.03-1.44x)
BATCH_MIN_COPIES = 3
#: ``batched="auto"``: the largest DDPM mini-batch batched (batch 32 measured to pay 1.2-1.6x; 64 only
#: 1.03-1.11x, 0.93-0.97x before the backward passes moved to plain autograd)
DDPM_BATCH_MAX = 32
SYNC_FALLBACK = 'gym.make_vec(id, num_envs=N, vectorization_mode="sync")'


def _check_batchable(c: EnvSettings) -> None:
    """Refuse the options the vector env does not support, naming the fallback."""
    bad = []
    if c.state == "exact":
        bad.append("state='exact'")
    if c.reward == "probe":
        bad.append("reward='probe'")
    if bad:
        raise ValueError(f"the native vector env does not support {', '.join(bad)}; use {SYNC_FALLBACK}"
                         " (or 'async'), which steps independent SISSUnlearnEnv copies")


class SISSUnlearnVectorEnv(VectorEnv):
    """N copies of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` sharing data, θ_0, probe and scorer.

    :param num_envs: number of copies N.
    :param instances: ``"SET:SPLIT"`` or a list of instance names: each copy draws its instance at
        every reset, as :class:`~unlearn_gym.envs.multi.InstanceSetEnv` does (seed s on instance n
        plays the episode ``instance=n`` plays with seed s).
    :param render_mode: must be ``None`` (rendering: use the sync fallback).
    :param batched: ``False``: step the copies in a loop (bit-identical to the single env);
        ``True``: copies of one bundle that step together make one ``torch.func`` update
        (:mod:`unlearn_gym.envs.batched`; equal to the loop within float tolerance); ``"auto"``
        (default): batched where measured to pay (:meth:`use_batched`), else the loop.
    :param batched_scores: score the copies of one bundle whose episodes end on the same step (and
        that were stepped as a group: ``batched`` not ``False``) as one computation
        (:meth:`~unlearn_gym.envs.outcome.OutcomeScorer.score_many`: their DDIM chains batched
        with ``vmap``); ``"auto"`` (default): only off the CPU, where it was measured to lose
        (0.25-0.53x the loop for 8 micro DDPMs on one thread: ``vmap`` turns the convolutions
        into slow grouped ones; docs/vector.md).
    :param kwargs: the arguments of :class:`~unlearn_gym.envs.siss_env.SISSUnlearnEnv` (every
        copy gets the same; ``state="exact"`` and ``reward="probe"`` are refused).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, *, instances: str | list[str] | None = None,
                 render_mode: str | None = None, max_episode_steps: int | None = None,
                 batched: bool | str = "auto", batched_scores: bool | str = "auto", **kwargs: Any):
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError(f"the native vector env does not render (render_mode={render_mode!r}); use"
                             f" {SYNC_FALLBACK} with render_mode='rgb_array'")
        if max_episode_steps is not None:
            raise ValueError("max_episode_steps is not an argument of the unlearning envs: pass horizon")
        self.num_envs = num_envs
        self.render_mode = None
        if batched not in (True, False, "auto"):
            raise ValueError(f"batched must be True, False or 'auto', got {batched!r}")
        self.batched = batched
        if batched_scores not in (True, False, "auto"):
            raise ValueError(f"batched_scores must be True, False or 'auto', got {batched_scores!r}")
        self.batched_scores = batched_scores
        self.names: list[str] | None = None
        if instances is not None:
            self.names, kwargs = instance_set_arguments(instances, kwargs)
        self._kwargs = kwargs
        self._bundles: dict[str | None, Shared] = {}
        first_name = self.names[0] if self.names else None
        first, model = self._build(first_name)
        c = first.settings
        if self.names is not None and c.mode == "online":
            raise ValueError("mode='online' with instances= is not supported by the native vector env; use"
                             f" {SYNC_FALLBACK}")
        low, high = observation_bounds(FEATURE_TABLES[c.observation])
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (first.action_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        # one model + AdamW + generator per copy; copy 0 keeps the loaded model
        models = [model] + [copy.deepcopy(model) for _ in range(num_envs - 1)]
        self.states = [RunState(m, make_optimizer(c, m), torch.Generator()) for m in models]
        for st in self.states:
            st.restore(first.origin)
            st.needs_restore = True
        self.current: list[Shared] = [first] * num_envs
        self._stack: StackedRuns | None = None  # built at the first batched update
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._obs = np.zeros((num_envs, *self.single_observation_space.shape), dtype=np.float32)
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminations = np.zeros(num_envs, dtype=np.bool_)
        self._truncations = np.zeros(num_envs, dtype=np.bool_)
        self._autoreset_envs = np.zeros(num_envs, dtype=np.bool_)

    # ----------------------------------------------------------------------------------------
    def _build(self, name: str | None) -> tuple[Shared, torch.nn.Module]:
        settings = resolve_env_settings(instance=name, **self._kwargs) if name else resolve_env_settings(**self._kwargs)
        _check_batchable(settings)
        shared, model, _ = build_shared(settings)
        self._bundles[name] = shared
        return shared, model

    def bundle(self, name: str | None) -> Shared:
        """The shared resources of an instance (``None``: of the env's settings), built on first use.

        :param name: instance name (``None`` without ``instances``).
        """
        if name not in self._bundles:
            if self.names is None or name not in self.names:
                raise ValueError(f"instance {name!r} is not in this env's instances {self.names}")
            shared, _ = self._build(name)  # the loaded model is dropped: copies own theirs
            if shared.origin.theta.keys() != self._bundles[self.names[0]].origin.theta.keys():
                raise ValueError(f"instance {name!r} has another architecture than {self.names[0]!r}")
        return self._bundles[name]

    def use_batched(self, shared: Shared, copies: int) -> bool:
        """Whether ``copies`` copies of one bundle stepping together make one batched update.

        ``batched="auto"``: from ``benchmarks/vector_speed.py`` (2-core CPU, 1 thread, idle; docs/vector.md):
        the batched env is 0.65-0.69x the loop at 1 copy, 1.03-1.44x at 2, 1.47-1.80x at 3 (VAE at
        batch 8 and 16, micro DDPM at batch 8; 2-3 runs each), about 3x at 16 and 3.6x at 64 (micro
        DDPM, batch 8); on the micro DDPM it is 1.2-1.6x at batch 32 and 1.03-1.11x at 64 (two runs)
        (compute-bound). So: at least :data:`BATCH_MIN_COPIES` copies, and the VAE or a DDPM batch of
        at most :data:`DDPM_BATCH_MAX`.

        :param shared: their bundle.
        :param copies: how many step together.
        """
        if self.batched is False or not supports(shared):
            return False
        if self.batched is True:
            return True
        c = shared.settings
        return copies >= BATCH_MIN_COPIES and (c.model == "cvae" or c.batch_size <= DDPM_BATCH_MAX)

    def settings(self, i: int) -> EnvSettings:
        """The resolved settings copy ``i`` runs with now (its current instance's).

        :param i: copy index.
        """
        return self.current[i].settings

    def score(self, i: int) -> dict[str, Any]:
        """The outcome score of copy ``i``'s current model.

        :param i: copy index.
        """
        return score_state(self.current[i], self.states[i])

    # ----------------------------------------------------------------------------------------
    def _reset_copy(self, i: int, seed: int | None, instance: str | None = None):
        st = self.states[i]
        if seed is not None or self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(seed)
        rng = self._rngs[i]
        if self.names is None:
            return reset_state(self.current[i], st, rng, seed is not None)
        # InstanceSetEnv's reset: draw the instance, then pass the seed (or one drawn) to it
        name = instance if instance is not None else self.names[int(rng.integers(len(self.names)))]
        shared = self.bundle(name)
        if shared is not self.current[i]:
            self.current[i] = shared
            st.optimizer = make_optimizer(shared.settings, st.model)  # its lr and weight decay
        sub_seed = seed if seed is not None else int(rng.integers(0, 2**31 - 1))
        inner, _ = seeding.np_random(sub_seed)
        return reset_state(shared, st, inner, True)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every copy (or those of ``options["reset_mask"]``).

        :param seed: ``None``, an int s (copy i gets s + i, as ``SyncVectorEnv``) or one seed per copy.
        :param options: ``{"reset_mask": bool array}`` and, with ``instances``, ``{"instance": NAME}``
            or one name per copy.
        """
        super().reset(seed=seed if isinstance(seed, int) else None)
        n = self.num_envs
        seeds = [None] * n if seed is None else [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
        if len(seeds) != n:
            raise ValueError(f"need {n} seeds, got {len(seeds)}")
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(n, dtype=np.bool_)), dtype=np.bool_)
        inst = options.pop("instance", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: reset_mask, instance")
        if inst is not None and self.names is None:
            raise ValueError("options['instance'] needs an env made with instances=")
        names = [inst] * n if inst is None or isinstance(inst, str) else list(inst)
        envs = [int(i) for i in np.flatnonzero(mask)]
        infos = []
        for i in envs:
            self._obs[i], info = self._reset_copy(i, seeds[i], names[i])
            self._terminations[i] = self._truncations[i] = self._autoreset_envs[i] = False
            infos.append(info)
        return self._obs.copy(), self._merge_infos(infos, envs)

    def step(self, actions: np.ndarray):
        """Step every copy; a copy whose episode ended on the previous step is reset instead (NEXT_STEP).

        :param actions: ``(num_envs, d)`` array in ``[-1, 1]`` (clipped; NaN raises ``ValueError``).
        """
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        results: dict[int, tuple] = {}
        groups: dict[int, list[tuple[int, float, float]]] = {}
        for i in range(self.num_envs):
            if self._autoreset_envs[i]:
                obs, info = self._reset_copy(i, None)
                results[i] = (obs, 0.0, False, False, info)
            elif self.batched is False:
                results[i] = step_state(self.current[i], self.states[i], actions[i])
            else:
                lam, scale = decide(self.current[i], self.states[i], actions[i])
                groups.setdefault(id(self.current[i]), []).append((i, lam, scale))
        for group in groups.values():
            shared = self.current[group[0][0]]
            if self.use_batched(shared, len(group)):
                if self._stack is None:  # the copies' weights and moments become views of one stack
                    self._stack = StackedRuns(self.states)
                upds = batched_siss_update(shared, self._stack, [i for i, _, _ in group],
                                           [lam for _, lam, _ in group], [sc for _, _, sc in group])
            else:
                upds = [_loop_update(shared, self.states[i], lam, sc) for i, lam, sc in group]
            scores = _score_together(self, shared, group, upds)
            for (i, lam, sc), upd in zip(group, upds):
                results[i] = finish_step(shared, self.states[i], upd, lam, sc, score=scores.get(i))
        infos = []
        for i in range(self.num_envs):
            (self._obs[i], self._rewards[i], self._terminations[i], self._truncations[i], info) = results[i]
            infos.append(info)
        infos = self._merge_infos(infos, range(self.num_envs))
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return self._obs.copy(), self._rewards.copy(), self._terminations.copy(), self._truncations.copy(), infos

    def _merge_infos(self, infos: Sequence[dict[str, Any]], envs: Sequence[int]) -> dict[str, Any]:
        """What ``VectorEnv._add_info`` makes of these copies' infos, built key by key instead of copy by copy.

        The same dict of arrays with ``_key`` masks (keys in order of first appearance, nested dicts
        merged alike); each array is the one ``_add_info`` makes for the key's first value, filled
        as ``_add_info`` fills it (at once where every value is a scalar of one type, which is what
        assigning them one by one gives). A key that is a dict in some infos only goes through
        ``_add_info`` copy by copy. Measured 3x faster than ``_add_info`` for 64 VAE copies' infos.

        :param infos: the copies' info dicts.
        :param envs: their copy indices, in the same order.
        """
        out: dict[str, Any] = {}
        envs = list(envs)
        same_keys = all(info.keys() == infos[0].keys() for info in infos)  # (the usual case)
        for key in infos[0] if same_keys else dict.fromkeys(k for info in infos for k in info):
            if same_keys:
                rows, values = envs, [info[key] for info in infos]
            else:
                rows, values = ([*t] for t in zip(*((i, info[key]) for i, info in zip(envs, infos) if key in info)))
            kinds = set(map(type, values))
            nested = [issubclass(k, dict) for k in kinds]
            if key != "final_obs" and all(nested):
                array = self._merge_infos(values, rows)
                mask = np.zeros(self.num_envs, dtype=np.bool_)
            elif key != "final_obs" and not any(nested):
                first = self._add_info({}, {key: values[0]}, rows[0])  # gymnasium's array for the type
                array, mask = first[key], first[f"_{key}"]
                if array.dtype != object and array.ndim == 1 and len(kinds) == 1:
                    array[rows] = values  # scalars of the array's own type: what assigning one by one gives
                else:
                    for i, v in zip(rows[1:], values[1:]):
                        array[i] = v
            else:
                merged: dict[str, Any] = {}
                for i, v in zip(rows, values):
                    merged = self._add_info(merged, {key: v}, i)
                array, mask = merged[key], merged[f"_{key}"]
            mask[rows] = True
            out[key], out[f"_{key}"] = array, mask
        return out


def _score_together(env: SISSUnlearnVectorEnv, shared: Shared, group: list[tuple[int, float, float]],
                    upds: list) -> dict[int, dict[str, Any]]:
    """The outcome scores of the copies of ``group`` whose episodes this step ends, as one computation
    (copy -> score; ``{}`` when fewer than two end or batched scoring is off)."""
    if shared.scorer is None or env.batched_scores is False:
        return {}
    if env.batched_scores == "auto" and next(env.states[group[0][0]].model.parameters()).device.type == "cpu":
        return {}  # checked first: on the CPU (the usual case) nothing else is computed
    ending = [i for (i, _, _), upd in zip(group, upds) if any(episode_end(shared, env.states[i], upd))]
    if len(ending) < 2:
        return {}
    return dict(zip(ending, score_states(shared, [env.states[i] for i in ending]), strict=True))


def _loop_update(shared: Shared, st: RunState, lam: float, scale: float):
    """The single env's update of one run (what :func:`~unlearn_gym.envs.dynamics.step_state` makes)."""
    c = shared.settings
    return siss_step(st.model, st.optimizer, shared.schedule, shared.sampler.sample(st.generator), lam,
                     rule=c.rule, scale=scale, s=c.s, generator=st.generator, max_grad_norm=c.max_grad_norm)


def make_unlearn_vector_env(num_envs: int = 1, **kwargs: Any) -> SISSUnlearnVectorEnv:
    """``vector_entry_point`` of the registered ids (``gym.make_vec(id, num_envs=N)``).

    :param num_envs: number of copies.
    :param kwargs: :class:`SISSUnlearnVectorEnv` arguments.
    """
    return SISSUnlearnVectorEnv(num_envs, **kwargs)
