"""Class erasure: which settings make a constant policy erase a digit and keep the others?

Runs a constant-action episode of ``task="erase-<d>"`` for every combination of the given update
rule constants, learning rates and horizons, and scores the final model on fixed noise with a
larger outcome sample than the env's default (the target: erased digit's accuracy < 10 % while
every other digit keeps >= 85 %). Prints one JSON line per setting.

    OMP_NUM_THREADS=1 python benchmarks/erase_calibration.py --preset micro --digits 3 7 \\
        --scales 1 2 4 --lrs 1e-4 3e-4 --horizons 100
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import gymnasium as gym
import numpy as np

import unlearn_gym  # noqa: F401
from unlearn_gym.policies import ConstantPolicy, rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--digits", type=int, nargs="+", default=[3])
    ap.add_argument("--rule", default="ratio")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4])
    ap.add_argument("--horizons", type=int, nargs="+", default=[100])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--action", type=float, default=0.0, help="constant λ action (0 = λ 0.5)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-forget", type=int, default=200)
    ap.add_argument("--n-per-retain", type=int, default=60)
    ap.add_argument("--ddim", type=int, default=10)
    a = ap.parse_args()
    oc = {"n_forget": a.n_forget, "n_per_retain": a.n_per_retain, "steps": a.ddim}
    envs: dict = {}
    for d, scale, lr, h, seed in itertools.product(a.digits, a.scales, a.lrs, a.horizons, a.seeds):
        key = (d, scale, lr, h)
        if key not in envs:
            envs[key] = gym.make("unlearn_gym:SISSUnlearnMicro-v0", preset=a.preset, task=f"erase-{d}",
                                 rule=a.rule, scale=scale, lr=lr, horizon=h, batch_size=a.batch_size,
                                 outcome_config=oc).unwrapped
        env = envs[key]
        t0 = time.perf_counter()
        r = rollout(env, ConstantPolicy(a.action), seed=seed)
        out = r["info"]["outcome"]
        others = out["retain_per_label_argmax"]  # the target is about plain accuracy
        print(json.dumps({
            "preset": a.preset, "digit": d, "rule": a.rule, "scale": scale, "lr": lr, "horizon": h, "seed": seed,
            "steps": r["steps"], "erased_acc": round(out["forget"], 3),
            "erased_acc_before": round(out["reference"]["forget"], 3),
            "others_mean": round(float(np.mean(list(others.values()))), 3),
            "others_min": round(min(others.values()), 3), "worst_digit": min(others, key=others.get),
            "outcome": round(out["outcome"], 3),
            "pass": out["forget"] < 0.10 and min(others.values()) >= 0.85,
            "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
