"""How the benchmark's wall time scales with seeds and workers (ratios from one machine, one run).

Runs the same small `micro` benchmark (a few methods, short runs) with 1 and 2 seeds on 1 worker
and with 2 seeds on W workers, each into a fresh folder (no cache), and prints the wall times and
the ratios: time(2 seeds) / time(1 seed) (ideal 2) and time(1 worker) / time(W workers) (ideal W).

    python benchmarks/benchmark_scaling.py --workers 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from unlearn_gym.benchmark import BenchmarkConfig, BenchSettings, run_benchmark


def timed(tmp: str, tag: str, **kw: object) -> float:
    cfg = BenchmarkConfig(preset="micro", methods=["siss", "adaptive-vi", "naive-deletion", "constant"], pareto=False,
                          settings=BenchSettings(eval_samples=10, eval_steps=10, steps=20), out=f"{tmp}/{tag}", **kw)
    t0 = time.perf_counter()
    res = run_benchmark(cfg, progress=False)
    assert not res["failed"], res["failed"]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t1 = timed(tmp, "s1w1", seeds=1, workers=1)
        t2 = timed(tmp, "s2w1", seeds=2, workers=1)
        tw = timed(tmp, f"s2w{a.workers}", seeds=2, workers=a.workers)
    out = {"seconds_1seed_1worker": round(t1, 1), "seconds_2seeds_1worker": round(t2, 1),
           f"seconds_2seeds_{a.workers}workers": round(tw, 1), "seed_ratio_2_vs_1": round(t2 / t1, 3),
           f"worker_speedup_{a.workers}_vs_1": round(t2 / tw, 3)}
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
