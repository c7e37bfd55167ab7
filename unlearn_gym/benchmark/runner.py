"""``run_benchmark``: build the cells, skip the cached ones, run the rest, write the report.

Layout of ``out``::

    cells/<key>.json     one finished cell (the cache; a rerun skips these)
    cells/<key>/         an agent cell's run folder (policy.zip, the final model, ...)
    results.json         configuration, every cell, aggregates, the verdicts, performance
    report.md            Table 1, statistics, Pareto front, per-class tables, performance, failures
    *.png                Pareto front, λ trajectories, time per method
"""

from __future__ import annotations

import datetime
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from unlearn_gym.benchmark.cells import BenchSettings, CellSpec
from unlearn_gym.benchmark.entries import (
    DEFAULT_ENTRIES,
    Entry,
    pareto_entries,
    resolve_bench_instances,
    select_entries,
)
from unlearn_gym.checkpoints import write_json
from unlearn_gym.device import resolve_device

#: settings of ``--quick``: one seed, 50 unlearning steps, fewer evaluation samples and DDIM steps,
#: short agent training
QUICK_SETTINGS = BenchSettings(eval_samples=20, eval_forget_samples=120, eval_steps=20, steps=50, agent_timesteps=256)


@dataclass
class BenchmarkConfig:
    """What ``unlearn-gym benchmark`` runs.

    :param preset: preset of the preset's own problem (used when ``instances`` is ``None``).
    :param instances: instance set spec (``default``, ``default:test``) or names; ``None``: the preset's problem.
    :param task: task of the preset's problem.
    :param seeds: number of seeds (``seed0``, ``seed0 + 1``, ...).
    :param seed0: first seed.
    :param methods: entry names, fnmatch patterns or kinds (``None``: every entry).
    :param pareto: add the static-SISS grid of the Pareto front.
    :param pareto_lambdas: its λ values.
    :param pareto_scales: its forget scales ρ (ratio rule).
    :param settings: measurement settings of every cell.
    :param workers: local worker processes (1: in this process).
    :param ray: run the cells on Ray.
    :param ray_address: Ray cluster address (``None``: a local Ray).
    :param out: output folder.
    :param quick: the ``--quick`` preset of the above (recorded in the report).
    :param entries: the candidate rows (default :data:`~unlearn_gym.benchmark.entries.DEFAULT_ENTRIES`);
        add your own :class:`~unlearn_gym.benchmark.entries.Entry` to benchmark a registered method
        of yours (its module must be imported in the workers too: use ``workers=1`` or import it
        from a package).
    :param model: model family, ``"ddpm"`` or ``"cvae"`` (the VAE rows: the preset's own problem at
        the VAE's learning rate and ρ; methods that cannot unlearn a VAE are listed as not applicable).
    :param device: where every cell's models run: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or
        ``"auto"`` (resolved once, here; a GPU is shared by the workers).
    """

    preset: str = "tiny"
    instances: str | list[str] | None = None
    task: str = "trousers"
    seeds: int = 5
    seed0: int = 0
    methods: list[str] | None = None
    pareto: bool = True
    pareto_lambdas: tuple[float, ...] = (0.1, 0.9)
    pareto_scales: tuple[float, ...] = (0.1, 0.25, 2.0)
    settings: BenchSettings = field(default_factory=BenchSettings)
    workers: int = 2
    ray: bool = False
    ray_address: str | None = None
    out: str = "runs/benchmark"
    quick: bool = False
    entries: tuple[Entry, ...] | None = None
    model: str = "ddpm"
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_config(**over: Any) -> BenchmarkConfig:
    """The ``--quick`` configuration (1 seed, :data:`QUICK_SETTINGS`, one λ and one ρ point of the
    Pareto grid), updated by ``over``.

    :param over: fields of :class:`BenchmarkConfig` to change.
    """
    base = BenchmarkConfig(seeds=1, settings=QUICK_SETTINGS, pareto_lambdas=(0.1,), pareto_scales=(2.0,), quick=True)
    return replace(base, **over)


def entries_of(cfg: BenchmarkConfig) -> list[Entry]:
    """The entries ``cfg`` selects (Table 1 rows, then the Pareto grid)."""
    pool = DEFAULT_ENTRIES if cfg.entries is None else tuple(cfg.entries)
    if cfg.pareto:
        pool += pareto_entries(cfg.pareto_lambdas, cfg.pareto_scales)
    return select_entries(pool, cfg.methods)


def build_cells(cfg: BenchmarkConfig) -> tuple[list[CellSpec], list[dict[str, str]]]:
    """The cells of ``cfg`` and the (entry, instance) pairs skipped because the entry cannot serve it.

    :param cfg: the configuration.
    """
    if cfg.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {cfg.seeds}")
    out = Path(cfg.out)
    device = str(resolve_device(cfg.device))  # fails early, with what to do, on a machine without it
    cells, skipped = [], []
    for inst in resolve_bench_instances(cfg.preset, cfg.instances, cfg.task, cfg.model):
        for entry in entries_of(cfg):
            why = entry.why_not(inst, cfg.model)
            if why:
                skipped.append({"entry": entry.name, "instance": inst.name, "why": why})
                continue
            for seed in range(cfg.seed0, cfg.seed0 + cfg.seeds):
                spec = CellSpec(entry=entry, instance=inst, seed=seed, settings=cfg.settings, model=cfg.model,
                                device=device)
                if entry.kind == "agent":
                    spec.workdir = str(out / "cells" / spec.key())
                cells.append(spec)
    return cells, skipped


def load_cached(out: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Finished cells under ``out/cells`` by key.

    A file that cannot be read or parsed is skipped with a warning that names it: its cell is recomputed.
    """
    cached = {}
    for path in sorted(Path(out, "cells").glob("*.json")):
        try:
            res = json.loads(path.read_text())
            if not isinstance(res, dict):
                raise ValueError(f"a JSON {type(res).__name__}, not an object")
        except (OSError, ValueError) as exc:
            warnings.warn(f"corrupt benchmark cache file {path} ({exc}): its cell is recomputed", stacklevel=2)
            continue
        if res.get("status") == "ok" and res.get("key") == path.stem:
            cached[path.stem] = res
    return cached


def _executor(cfg: BenchmarkConfig, todo: list[dict[str, Any]]):
    from unlearn_gym.benchmark import executors

    if cfg.ray:
        return executors.run_ray(todo, cfg.ray_address, cfg.workers)
    if cfg.workers <= 1:
        return executors.run_serial(todo)
    return executors.run_pool(todo, cfg.workers)


def run_benchmark(cfg: BenchmarkConfig, *, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Run (or resume) a benchmark and write ``results.json``, ``report.md`` and the figures.

    :param cfg: the configuration.
    :param progress: show the progress display.
    :param command: the command line (recorded in the report).
    :returns: the content of ``results.json``.
    """
    from unlearn_gym.benchmark.report import write_report

    out = Path(cfg.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    cells, skipped = build_cells(cfg)
    cached = load_cached(out)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in cells:
        key = spec.key()
        if key in cached:
            results[key] = {**cached[key], "cached": True}
        else:
            todo.append(spec)
    t0 = time.perf_counter()
    failed: list[dict[str, Any]] = []
    bar = tqdm(total=len(cells), initial=len(results), disable=not progress, unit="cell", desc="benchmark",
               dynamic_ncols=True)
    running = min(len(todo), 1 if cfg.workers <= 1 and not cfg.ray else cfg.workers)
    bar.set_postfix_str(f"cached {len(results)}, running {running}, left {len(todo)}")
    left = len(todo)
    for res in _executor(cfg, [s.to_dict() for s in todo]):
        left -= 1
        key = res.get("key")
        if res["status"] == "ok" and key:
            write_json(out / "cells" / f"{key}.json", res)
            results[key] = {**res, "cached": False}
            msg = _line(res)
        else:
            failed.append(res)
            msg = f"FAILED {res['entry']} · {res['instance']} · seed {res['seed']}: {res['error']}"
        bar.update(1)
        bar.set_postfix_str(f"failed {len(failed)}, running {min(left, running)}, left {left}")
        if progress:
            tqdm.write(msg)
    bar.close()
    wall = time.perf_counter() - t0
    fresh = [r for r in results.values() if not r.get("cached")]
    run_info = {"wall_s": round(wall, 1), "computed": len(todo), "cached": len(cells) - len(todo),
                "cell_seconds": round(sum(float(r.get("timing_total_s", 0.0)) for r in fresh), 1),
                "workers": cfg.workers, "executor": "ray" if cfg.ray else ("serial" if cfg.workers <= 1 else "pool"),
                "ray_address": cfg.ray_address, "command": command,
                "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    runs = previous_runs(out)
    if todo or failed or not runs:  # a rerun that computed nothing only rewrites the report
        runs.append(run_info)
    return write_report(cfg, cells, results, failed, skipped, runs, run_info)


def previous_runs(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The runs recorded in an earlier ``results.json`` of ``out`` (a resumed benchmark keeps them)."""
    try:
        old = json.loads(Path(out, "results.json").read_text())
    except (OSError, ValueError):
        return []
    if old.get("runs"):
        return list(old["runs"])
    if "run" in old:  # a report of the first format: one run, its cell-seconds in the performance section
        return [{"cell_seconds": (old.get("performance") or {}).get("cell_seconds_computed", 0.0), **old["run"]}]
    return []


def _line(res: dict[str, Any]) -> str:
    m, o, t = res.get("metrics") or {}, res.get("outcome") or {}, res.get("timing") or {}
    parts = [f"{res['entry']} · {res['instance']} · seed {res['seed']}:"]
    if m:
        parts.append(f"forget {m['forget_score']:.3f}, retain acc {m['retain_accuracy']:.3f},"
                     f" retain FID {m['retain_fid']:.1f}")
    if o:
        parts.append(f"outcome {o['outcome']:+.3f}")
    if res.get("diverged"):
        parts.append("DIVERGED")
    parts.append(f"({res.get('timing_total_s', t.get('unlearn_s', 0)):.0f} s)")
    return " ".join(parts)
