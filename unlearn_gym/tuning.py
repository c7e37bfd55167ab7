"""Search the tuned baselines' parameters with Optuna (``docs/headroom.md``, "v3: tuned baselines").

The objective of a trial is the mean outcome over (instance, seed) episodes on the given instances
(the train split of a set) and *search* seeds, which must be disjoint from every evaluation seed.
Every trial of every family sees the same episodes (common random numbers), so the families'
budgets are equal when their trial counts are: ``trials × len(instances) × len(seeds)`` episodes.
The best ``top_k`` trials are then re-run on ``select_seeds`` (fresh, also disjoint from evaluation),
and the one with the best mean over all its episodes is returned (less winner's curse than the
single best noisy trial).

.. code-block:: python

    from unlearn_gym.tuning import search
    res = search("constant", ["micro-heavy-scale-b8-h30"], seeds=[1000, 1001], trials=20)
    res["params"]        # {"lam": ..., "rho": ...}; unlearn_gym.tuned.make_policy("constant", res["params"])

``unlearn-gym tune --set default --family constant --trials 40`` runs it from the command line.
Requires ``optuna`` (``pip install unlearn-gym[tune]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from unlearn_gym.episodes import ENV_ID, EpisodeRunner, mean_outcome
from unlearn_gym.policies import Policy
from unlearn_gym.tuned import SPACES, make_policy

__all__ = ["ENV_ID", "EpisodeRunner", "mean_outcome", "search", "summary"]

def search(family: str, instances: Sequence[str], seeds: Sequence[int], trials: int, *,
           sampler_seed: int = 0, select_seeds: Sequence[int] = (), top_k: int = 3,
           runner: EpisodeRunner | None = None, env_kwargs: dict[str, Any] | None = None,
           log: Callable[[str], None] | None = None, ray: bool = False, ray_address: str | None = None,
           workers: int = 2, enqueue: Sequence[dict[str, float]] = (),
           space: dict[str, tuple[float, float]] | None = None,
           factory: Callable[[dict[str, float]], Policy] | None = None) -> dict[str, Any]:
    """TPE search of ``family``'s parameters (box :data:`unlearn_gym.tuned.SPACES`).

    :param family: ``"constant"``, ``"schedule"`` or ``"feedback"``.
    :param instances: instances every trial runs on.
    :param seeds: search seeds every trial runs (keep them disjoint from evaluation seeds).
    :param trials: number of trials.
    :param sampler_seed: seed of the TPE sampler.
    :param select_seeds: fresh seeds the best ``top_k`` trials are re-run on (none: keep the best trial).
    :param top_k: trials re-run in the selection stage.
    :param runner: the episode runner (default: a new one with ``env_kwargs``).
    :param env_kwargs: env arguments when no runner is given.
    :param log: progress lines (e.g. ``print``).
    :param ray: run the trials through Ray Tune's Optuna searcher (:mod:`unlearn_gym.tuning_ray`);
        the selection stage runs here.
    :param ray_address: a Ray cluster to join (``None``: a local Ray with ``workers`` CPUs).
    :param workers: Ray Tune trials at once.
    :param enqueue: parameter sets tried first (Optuna ``enqueue_trial``; they count as trials), e.g. a
        set's constant as the first trial of a per-instance search; not with ``ray``.
    :param space: a parameter box for a family outside :data:`unlearn_gym.tuned.SPACES` (with
        ``factory``; ``family`` is then only its label); not with ``ray``.
    :param factory: ``factory(params) -> Policy`` for ``space``.
    :returns: ``family``, ``params`` (the chosen), ``value`` (its mean outcome over all its episodes),
        ``trials`` (every trial's params, value and rows), ``selection``, ``budget`` (trials,
        episodes of the search and of the selection), ``seeds``, ``select_seeds``, ``instances``,
        ``sampler``, ``wall_s``.
    """
    try:
        import optuna
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the search needs optuna: pip install 'unlearn-gym[tune]'") from e
    if (space is None) != (factory is None):
        raise ValueError("pass space and factory together")
    if space is None and family not in SPACES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(SPACES)}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if (enqueue or space is not None) and ray:
        raise ValueError("enqueue, space and factory are not supported with ray")
    runner = runner or EpisodeRunner(env_kwargs)
    space = SPACES[family] if space is None else space
    make = (lambda p: make_policy(family, p)) if factory is None else factory
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for params in enqueue:
        study.enqueue_trial(dict(params))
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if ray:
        from unlearn_gym.tuning_ray import ray_trials

        records = ray_trials(family, instances, seeds, trials, sampler_seed=sampler_seed, workers=workers,
                             address=ray_address, env_kwargs=runner.env_kwargs)
        if log:
            for r in records:
                log(f"[{family}] ray trial {r['number'] + 1}/{trials}: {r['value']:+.3f}")

    def objective(trial: Any) -> float:
        params = {k: trial.suggest_float(k, lo, hi) for k, (lo, hi) in space.items()}
        rows = runner.evaluate(make(params), instances, seeds)
        value = mean_outcome(rows)
        records.append({"number": trial.number, "params": params, "value": value, "rows": rows})
        if log:
            log(f"[{family}] trial {trial.number + 1}/{trials}: {value:+.3f}"
                f" ({', '.join(f'{k} {v:+.2f}' for k, v in params.items())}) {time.perf_counter() - t0:.0f} s")
        return value

    if not ray:
        study.optimize(objective, n_trials=trials)
    search_wall = time.perf_counter() - t0
    ranked = sorted(records, key=lambda r: (-r["value"], r["number"]))
    candidates = []
    if select_seeds:
        for rec in ranked[:top_k]:
            extra = runner.evaluate(make(rec["params"]), instances, select_seeds)
            candidates.append({"number": rec["number"], "params": rec["params"], "search_value": rec["value"],
                               "select_value": mean_outcome(extra), "value": mean_outcome(rec["rows"] + extra),
                               "rows": extra})
            if log:
                log(f"[{family}] selection: trial {rec['number']}: search {rec['value']:+.3f},"
                    f" fresh {candidates[-1]['select_value']:+.3f}")
        chosen = max(candidates, key=lambda c: (c["value"], -c["number"]))
    else:
        chosen = {"number": ranked[0]["number"], "params": ranked[0]["params"], "value": ranked[0]["value"]}
    n_inst = len(instances)
    return {
        "family": family, "params": chosen["params"], "value": chosen["value"], "chosen_trial": chosen["number"],
        "instances": list(instances), "seeds": [int(s) for s in seeds], "select_seeds": [int(s) for s in select_seeds],
        "sampler": {"name": "TPESampler", "seed": sampler_seed, "optuna": optuna.__version__,
                    **({"via": "ray.tune OptunaSearch", "workers": workers} if ray else {})},
        "budget": {"trials": trials, "episodes_per_trial": n_inst * len(seeds),
                   "search_episodes": trials * n_inst * len(seeds), "top_k": len(candidates),
                   "selection_episodes": len(candidates) * n_inst * len(select_seeds)},
        "wall_s": round(time.perf_counter() - t0, 1), "search_wall_s": round(search_wall, 1),
        "trials": records, "selection": candidates,
    }


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of :func:`search` without its per-episode rows (what the committed asset keeps)."""
    out = {k: v for k, v in result.items() if k not in ("trials", "selection")}
    out["trials"] = [{"number": r["number"], "params": r["params"], "value": r["value"]} for r in result["trials"]]
    out["selection"] = [{k: v for k, v in c.items() if k != "rows"} for c in result["selection"]]
    return out
