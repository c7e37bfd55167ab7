"""The tuned-baseline search through Ray Tune's Optuna searcher (``unlearn-gym tune --ray``).

The same search as :func:`unlearn_gym.tuning.search` (TPE over :data:`unlearn_gym.tuned.SPACES`,
every trial the mean outcome over the same (instance, search seed) episodes), with the trials run
as Ray Tune trials on a local Ray (``workers`` at once) or on a cluster (``address``), so a search
spreads over the cores and machines the benchmark's ``--ray`` uses. TPE proposes up to ``workers``
trials before it sees their results, so a parallel search does not reproduce a serial one trial for
trial; with ``workers=1`` it proposes one at a time. Needs ``ray[tune]`` and ``optuna``
(``pip install 'unlearn-gym[tune]'``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

#: one episode runner per Ray worker process and env arguments (a trial reuses the envs of the last)
_RUNNERS: dict[str, Any] = {}


def _trial(config: dict[str, float], family: str, instances: list[str], seeds: list[int],
           env_kwargs: dict[str, Any]) -> None:
    """One Ray Tune trial: the mean outcome of ``config``'s policy over the episodes, reported."""
    import json

    from ray import tune

    from unlearn_gym.episodes import EpisodeRunner, mean_outcome
    from unlearn_gym.tuned import SPACES, make_policy

    key = json.dumps(env_kwargs, sort_keys=True, default=str)
    if key not in _RUNNERS:
        _RUNNERS[key] = EpisodeRunner(env_kwargs)
    params = {k: float(config[k]) for k in SPACES[family]}
    rows = _RUNNERS[key].evaluate(make_policy(family, params), instances, seeds)
    tune.report({"outcome": mean_outcome(rows), "rows": rows})


def ray_trials(family: str, instances: Sequence[str], seeds: Sequence[int], trials: int, *,
               sampler_seed: int = 0, workers: int = 2, address: str | None = None,
               env_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the search's trials as Ray Tune trials (``OptunaSearch`` with a seeded TPE sampler).

    :param family: ``"constant"``, ``"schedule"`` or ``"feedback"``.
    :param instances: instances every trial runs on.
    :param seeds: search seeds of every trial.
    :param trials: number of trials.
    :param sampler_seed: seed of the TPE sampler.
    :param workers: trials at once (and the CPUs of a local Ray).
    :param address: a Ray cluster to join (``None``: a local Ray).
    :param env_kwargs: env arguments of every episode.
    :returns: the trials in the order Ray started them: ``number``, ``params``, ``value``, ``rows``.
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # rows are lists: no CSV/TBX loggers
    try:
        import optuna
        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as e:
        raise ImportError("tune --ray needs ray[tune] and optuna: pip install 'unlearn-gym[tune]'") from e
    from unlearn_gym.tuned import SPACES

    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1",
                                                           "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}},
                              "include_dashboard": False, "log_to_driver": False}
        ray.init(address=address, **kw) if address else ray.init(num_cpus=max(1, workers), **kw)
        started = True
    try:
        space = {k: tune.uniform(lo, hi) for k, (lo, hi) in SPACES[family].items()}
        searcher = OptunaSearch(metric="outcome", mode="max", sampler=optuna.samplers.TPESampler(seed=sampler_seed))
        trainable = tune.with_resources(
            tune.with_parameters(_trial, family=family, instances=list(instances), seeds=[int(s) for s in seeds],
                                 env_kwargs=dict(env_kwargs or {})), {"cpu": 1})
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(trainable, param_space=space,
                               tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                                           max_concurrent_trials=max(1, workers)),
                               run_config=tune.RunConfig(storage_path=tmp, name="tune", verbose=0))
            grid = tuner.fit()
            results = [grid[i] for i in range(len(grid))]
        errors = [r.error for r in results if r.error is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} Ray Tune trial(s) failed; the first: {errors[0]}")
        return [{"number": i, "params": {k: float(r.config[k]) for k in SPACES[family]},
                 "value": float(r.metrics["outcome"]), "rows": list(r.metrics["rows"])}
                for i, r in enumerate(results)]
    finally:
        if started:
            ray.shutdown()
