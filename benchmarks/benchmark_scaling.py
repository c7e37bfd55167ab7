"""How the benchmark's wall time scales with seeds and workers (ratios from one machine, one run).

Runs the same `micro` benchmark (four methods, the full 50-step budget) as separate
`unlearn-gym benchmark` processes, each into a fresh folder (no cache) with one torch thread per
process: N and 2N seeds on 1 worker, and 2N seeds on W workers. Prints the wall times and the
ratios time(2N seeds) / time(N seeds) (ideal 2) and time(1 worker) / time(W workers) (ideal W).

    python benchmarks/benchmark_scaling.py --seeds 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def timed(out: str, seeds: int, workers: int) -> float:
    cmd = [sys.executable, "-m", "unlearn_gym.cli", "benchmark", "--preset", "micro", "--seeds", str(seeds),
           "--workers", str(workers), "--methods", "siss", "adaptive-vi", "naive-deletion", "constant",
           "--no-pareto", "--eval-samples", "30", "--eval-steps", "25", "--quiet", "--out", out]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2, help="N")
    ap.add_argument("--workers", type=int, default=2, help="W")
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    n, w = a.seeds, a.workers
    with tempfile.TemporaryDirectory() as tmp:
        t1 = timed(f"{tmp}/a", n, 1)
        t2 = timed(f"{tmp}/b", 2 * n, 1)
        tw = timed(f"{tmp}/c", 2 * n, w)
    out = {f"seconds_{n}seeds_1worker": round(t1, 1), f"seconds_{2 * n}seeds_1worker": round(t2, 1),
           f"seconds_{2 * n}seeds_{w}workers": round(tw, 1), "seed_ratio": round(t2 / t1, 3),
           f"speedup_{w}_workers": round(t2 / tw, 3)}
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
