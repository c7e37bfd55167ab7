"""Where cells run: in this process, on a local process pool, or as Ray tasks (one machine or a cluster).

Every executor takes cell specs (plain dicts) and yields each cell's result as soon as it is done,
in completion order. They run the same function, :func:`~unlearn_gym.benchmark.cells.run_cell`, so
a cell's result does not depend on where it ran (each cell seeds everything it uses; workers run
torch with one thread).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from unlearn_gym.benchmark.cells import run_cell


def _single_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _failed(spec: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    return {"key": None, "entry": spec["entry"]["name"], "instance": spec["instance"]["name"], "seed": spec["seed"],
            "status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": ""}


def run_serial(specs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Run the cells one after another in this process (torch keeps its thread count).

    :param specs: :meth:`CellSpec.to_dict` of each cell.
    """
    for spec in specs:
        yield run_cell(spec)


def run_pool(specs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    """Run the cells on ``workers`` spawned processes, one torch thread each.

    :param specs: the cells.
    :param workers: processes (>= 2; use :func:`run_serial` for one).
    """
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_single_thread) as pool:
        futures = {pool.submit(run_cell, spec): spec for spec in specs}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # a worker that died (out of memory, killed): report the cell
                yield _failed(futures[fut], exc)


def _ray_cell(spec: dict[str, Any]) -> dict[str, Any]:
    import ray

    _single_thread()
    return {**run_cell(spec), "ray_node": ray.get_runtime_context().get_node_id()}


def run_ray(specs: list[dict[str, Any]], address: str | None = None, workers: int | None = None
            ) -> Iterator[dict[str, Any]]:
    """Run the cells as Ray tasks (one CPU each).

    Without ``address`` a local Ray starts on this machine's cores (``workers`` of them, default all);
    with one (``"auto"`` or ``"HOST:6379"``) the driver joins that cluster, where every node needs
    this package and its data installed (the tasks import it). Results come back to the driver,
    which alone writes the cache.

    :param specs: the cells.
    :param address: a Ray cluster address, or ``None`` for a local Ray.
    :param workers: CPUs of the local Ray (ignored with ``address``).
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'unlearn-gym[ray]' (tested with ray 2.60)") from None
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}},
                              "include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), **kw)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        pending = {remote.remote(spec): spec for spec in specs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                spec = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # the task or its worker failed outside run_cell
                    yield _failed(spec, exc)
    finally:
        if started:
            ray.shutdown()
