"""How long ``gym.make`` takes in a fresh process, with an empty and with a warm measurement cache.

Each build runs in its own Python process (imports included in neither number: they are timed
apart), so the first build pays everything a new user's first ``gym.make`` pays.

    OMP_NUM_THREADS=1 python benchmarks/env_build.py --id SISSUnlearn-v0 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, time
t0 = time.perf_counter()
import gymnasium as gym, unlearn_gym  # noqa: F401
t1 = time.perf_counter()
gym.make("unlearn_gym:{env_id}")
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "make_s": t2 - t1}}))
"""


def build_once(env_id: str, cache_dir: str) -> dict[str, float]:
    """Time one import + ``gym.make`` in a new process using ``cache_dir``."""
    env = {**os.environ, "UNLEARN_GYM_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", CHILD.format(env_id=env_id)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--id", default="SISSUnlearn-v0", help="registered env id")
    ap.add_argument("--repeats", type=int, default=2, help="cold/warm pairs")
    args = ap.parse_args()
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            cold, warm = build_once(args.id, d), build_once(args.id, d)
            rows.append({"cold_make_s": cold["make_s"], "warm_make_s": warm["make_s"],
                         "import_s": cold["import_s"], "warm_over_cold": warm["make_s"] / cold["make_s"]})
    print("| id | import (s) | first make, empty cache (s) | first make, warm cache (s) | warm / cold |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {args.id} | {r['import_s']:.2f} | {r['cold_make_s']:.2f} | {r['warm_make_s']:.2f} |"
              f" {r['warm_over_cold']:.2f} |")


if __name__ == "__main__":
    main()
