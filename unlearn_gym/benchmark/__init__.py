"""``unlearn-gym benchmark``: every method, λ policy and RL agent on the same instances and seeds,
evaluated alike, with confidence intervals, paired verdicts, a Pareto front and a performance section.

* :mod:`~unlearn_gym.benchmark.entries`: the rows (entries) and the instances;
* :mod:`~unlearn_gym.benchmark.cells`: one cell (entry, instance, seed) -> measured model;
* :mod:`~unlearn_gym.benchmark.executors`: serial, process pool or Ray;
* :mod:`~unlearn_gym.benchmark.runner`: cells, cache, resume, progress;
* :mod:`~unlearn_gym.benchmark.analysis` (on :mod:`unlearn_gym.stats`): aggregates and verdicts;
* :mod:`~unlearn_gym.benchmark.report`, :mod:`~unlearn_gym.benchmark.figures`: the report.

.. code-block:: python

    from unlearn_gym.benchmark import BenchmarkConfig, run_benchmark
    results = run_benchmark(BenchmarkConfig(preset="tiny", seeds=5, out="runs/bench"))
"""

from unlearn_gym.benchmark.cells import BenchSettings, CellSpec, run_cell
from unlearn_gym.benchmark.entries import DEFAULT_ENTRIES, Entry, pareto_entries, preset_instance
from unlearn_gym.benchmark.runner import QUICK_SETTINGS, BenchmarkConfig, build_cells, quick_config, run_benchmark

__all__ = [
    "DEFAULT_ENTRIES", "QUICK_SETTINGS", "BenchSettings", "BenchmarkConfig", "CellSpec", "Entry", "build_cells",
    "pareto_entries", "preset_instance", "quick_config", "run_benchmark", "run_cell",
]
