"""Build the shipped baseline rows ``unlearn_gym/assets/baselines-<set>-v<version>-outcome<v>.json``.

1. takes the committed headroom rows (``docs/headroom/<set>.json``: every baseline, seeds 0-4, the
   selection seeds), after replaying one row per instance to check that they still pair with
   ``gym.make(id, instance=NAME)`` + ``reset(seed=s)``;
2. chooses each instance's best constant and best schedule on them (``unlearn_gym.baseline_rows.select``);
3. plays the default constant, the best constant, the best schedule and (for a set with committed
   tuned parameters) the tuned baselines of the split's instances on the evaluation seeds (100, 101,
   ...), what ``unlearn_gym.evaluate_policy`` pairs a policy with by default; rows the shipped file
   already holds are kept, not played again (``--fresh`` plays everything);
4. writes the file atomically.

    OMP_NUM_THREADS=1 python benchmarks/ship_baselines.py --set default --split test --seeds 10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from unlearn_gym.baseline_rows import (
    SELECTION_SEEDS,
    BaselineRows,
    compute_rows,
    eval_seeds,
    rows_from_headroom,
    select,
    shipped_dir,
)
from unlearn_gym.envs.instances import INSTANCE_SETS
from unlearn_gym.episodes import as_actor, make_instance_env, run_episode
from unlearn_gym.policies import baselines

DOCS = Path(__file__).resolve().parent.parent / "docs" / "headroom"


def check_pairing(rows: BaselineRows, seed: int = 0) -> None:
    """Replay the default constant's row of every instance on ``seed``; raise when one differs."""
    for inst in rows.rows:
        name = next(iter(baselines(inst)))
        env = make_instance_env(inst)
        got = run_episode(env, as_actor(baselines(inst)[name], int(env.action_space.shape[0])), seed)["outcome"]
        want = rows.get(inst, name, seed)["outcome"]
        print(f"  pairing check {inst} / {name} / seed {seed}: replayed {got:+.4f}, committed {want:+.4f}")
        if abs(got - want) > 1e-9:
            raise SystemExit(f"{inst}: the committed headroom rows no longer pair with the env; re-run"
                             " benchmarks/headroom.py first")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, choices=sorted(INSTANCE_SETS))
    ap.add_argument("--split", default="test", help="instances whose evaluation-seed rows are played")
    ap.add_argument("--seeds", type=int, default=10, help="evaluation seeds 100 .. 100 + N - 1")
    ap.add_argument("--no-check", action="store_true", help="skip the pairing check")
    ap.add_argument("--out", help="destination (default: the package's asset folder)")
    ap.add_argument("--fresh", action="store_true", help="play every evaluation row, ignoring the shipped file")
    a = ap.parse_args()
    torch.set_num_threads(1)
    (rows,) = [r for r in rows_from_headroom(json.loads((DOCS / f"{a.set}.json").read_text()),
                                              f"docs/headroom/{a.set}.json (benchmarks/headroom.py), seeds 0-4")
               if r.set_name == a.set]
    if not a.no_check:
        check_pairing(rows)
    shipped = shipped_dir() / rows.file_name
    if shipped.is_file() and not a.fresh:
        rows.merge(BaselineRows.from_dict(json.loads(shipped.read_text())))
    seeds = eval_seeds(a.seeds)
    jobs = []
    for inst in INSTANCE_SETS[a.set].split(a.split):
        chosen = select(rows, inst.name, SELECTION_SEEDS)
        print(f"  {inst.name}: {chosen}")
        jobs += [(inst.name, n, s) for n in dict.fromkeys(chosen.values()) for s in seeds]
    t0 = time.perf_counter()
    n = compute_rows(rows, jobs, write=False)
    wall = time.perf_counter() - t0
    if n:
        rows.sources[-1] = (f"benchmarks/ship_baselines.py --set {a.set} --split {a.split} --seeds {a.seeds}:"
                            f" {n} episodes (seeds {seeds[0]}-{seeds[-1]}) in {wall:.0f} s on one thread")
    path = rows.write(Path(a.out) if a.out else shipped_dir() / rows.file_name)
    print(f"wrote {path}: {n} episodes in {wall:.0f} s ({wall / max(n, 1):.2f} s each)")


if __name__ == "__main__":
    main()
