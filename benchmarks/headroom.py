"""Headroom: does the policy change the outcome of an instance? (issue "A control problem with headroom")

For every instance of a set, runs >= 5 constant policies spanning the action range and >= 3
schedules, each over several seeds (paired: seed s gives every policy the same mini-batches,
noise and timesteps), and reports the outcome score (mean ± 95 % CI) with the paper's return
(Σ -L_SISS - β Δλ²) beside it. An instance has headroom when

  (a) the best and the worst constant differ by more than the 95 % CI of their paired difference;
  (b) the best schedule beats the best constant by more than the 95 % CI of their paired difference.

It also reports the Spearman rank correlation between the paper's return and the outcome score
over the policies: is maximising the paper's reward the same as unlearning well?

    OMP_NUM_THREADS=1 python benchmarks/headroom.py --set default --seeds 5 --workers 2 \\
        --json docs/headroom.json --md docs/headroom-table.md
    OMP_NUM_THREADS=1 python benchmarks/headroom.py --custom '{"preset": "micro", "batch_size": 8}' --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from unlearn_gym.envs.instances import INSTANCE_SETS, Instance, get_instance
from unlearn_gym.policies import baselines, rollout
from unlearn_gym.stats import ci95

_ENVS: dict[str, Any] = {}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run(job: tuple[dict[str, Any], str, int, dict[str, Any]]) -> dict[str, Any]:
    import gymnasium as gym

    import unlearn_gym  # noqa: F401

    inst_kwargs, policy_name, seed, env_kwargs = job
    key = json.dumps([inst_kwargs, env_kwargs], sort_keys=True)
    if key not in _ENVS:
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in inst_kwargs.items()}
        kw.update(env_kwargs)
        _ENVS[key] = gym.make("unlearn_gym:SISSUnlearnMicro-v0", **kw).unwrapped
    env = _ENVS[key]
    pol = baselines(env.config["action"])[policy_name]
    t0 = time.perf_counter()
    r = rollout(env, pol, seed=seed)
    out = r["info"]["outcome"]
    return {"policy": policy_name, "seed": seed, "outcome": out["outcome"], "forget": out["forget"],
            "retain_mean": out["retain_mean"], "one_rate": out["one_rate"], "retain_drop": out["retain_drop"],
            "paper_return": r["paper_return"], "steps": r["steps"], "diverged": r["terminated"],
            "seconds": time.perf_counter() - t0, "reference": out["reference"]}


def analyse(rows: list[dict[str, Any]], action: str) -> dict[str, Any]:
    """Per-policy statistics and the headroom verdicts (a) and (b) of one instance."""
    from scipy.stats import spearmanr

    names = list(baselines(action))
    by = {n: sorted((r for r in rows if r["policy"] == n), key=lambda r: r["seed"]) for n in names}
    stats = {}
    for n in names:
        o, p = ci95([r["outcome"] for r in by[n]]), ci95([r["paper_return"] for r in by[n]])
        stats[n] = {"outcome": o[0], "outcome_ci": o[1], "paper_return": p[0], "paper_return_ci": p[1],
                    "forget": float(np.mean([r["forget"] for r in by[n]])),
                    "retain_mean": float(np.mean([r["retain_mean"] for r in by[n]])),
                    "one_rate": float(np.mean([r["one_rate"] for r in by[n]])),
                    "diverged": sum(r["diverged"] for r in by[n]), "n": len(by[n])}
    consts = [n for n in names if n.startswith("const")]
    scheds = [n for n in names if not n.startswith("const")]
    best_c = max(consts, key=lambda n: stats[n]["outcome"])
    worst_c = min(consts, key=lambda n: stats[n]["outcome"])
    best_s = max(scheds, key=lambda n: stats[n]["outcome"])

    def paired(x: str, y: str) -> tuple[float, float]:
        return ci95([a["outcome"] - b["outcome"] for a, b in zip(by[x], by[y])])

    da, db = paired(best_c, worst_c), paired(best_s, best_c)
    rho = spearmanr([stats[n]["paper_return"] for n in names], [stats[n]["outcome"] for n in names])
    return {
        "policies": stats, "best_constant": best_c, "worst_constant": worst_c, "best_schedule": best_s,
        "a_diff": da[0], "a_ci": da[1], "a": bool(da[0] - da[1] > 0),
        "b_diff": db[0], "b_ci": db[1], "b": bool(db[0] - db[1] > 0),
        "spearman_paper_vs_outcome": float(rho.statistic), "spearman_p": float(rho.pvalue),
    }


def markdown(name: str, inst: dict[str, Any], res: dict[str, Any]) -> str:
    """One instance's table."""
    lines = [f"### `{name}`", "",
             "instance: " + ", ".join(f"{k}={v}" for k, v in inst.items() if k != "description"), "",
             "| policy | outcome (mean ± 95 % CI) | forget | retain acc. | one rate | paper return (± CI) | diverged |",
             "|---|---|---|---|---|---|---|"]
    for n, s in res["policies"].items():
        lines.append(f"| {n} | {s['outcome']:+.3f} ± {s['outcome_ci']:.3f} | {s['forget']:.3f} | "
                     f"{s['retain_mean']:.3f} | {s['one_rate']:.3f} | {s['paper_return']:.2f} ± "
                     f"{s['paper_return_ci']:.2f} | {s['diverged']}/{s['n']} |")
    ref = res.get("reference", {})
    lines += ["", f"θ_0 on the same noise: forget {ref.get('forget', float('nan')):.3f}, retain acc. "
              f"{ref.get('retain_mean', float('nan')):.3f}, one rate {ref.get('one_rate', float('nan')):.3f}.",
              f"(a) best constant `{res['best_constant']}` − worst `{res['worst_constant']}`: "
              f"{res['a_diff']:+.3f} ± {res['a_ci']:.3f} (paired) → **{'yes' if res['a'] else 'no'}**.",
              f"(b) best schedule `{res['best_schedule']}` − best constant: {res['b_diff']:+.3f} ± "
              f"{res['b_ci']:.3f} (paired) → **{'yes' if res['b'] else 'no'}**.",
              f"Spearman ρ (paper return vs outcome, over policies): {res['spearman_paper_vs_outcome']:+.2f} "
              f"(p = {res['spearman_p']:.2g}).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", help="instance set (all its train and test instances)")
    ap.add_argument("--instance", nargs="*", default=[], help="instance names")
    ap.add_argument("--custom", nargs="*", default=[], help="JSON dicts of Instance fields (exploration)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--env-kwargs", default="{}", help="JSON env kwargs shared by all runs")
    ap.add_argument("--json", help="write all rows and statistics here")
    ap.add_argument("--md", help="write the markdown tables here")
    a = ap.parse_args()
    instances: list[Instance] = [get_instance(n) for n in a.instance]
    if a.set:
        instances += list(INSTANCE_SETS[a.set].split("all"))
    for i, c in enumerate(a.custom):
        instances.append(replace(Instance(name=f"custom-{i}", preset="micro"), **json.loads(c)))
    env_kwargs = json.loads(a.env_kwargs)
    jobs = []
    for inst in instances:
        kw = {k: v for k, v in asdict(inst).items() if k not in ("name", "description")}
        kw["reward"] = "outcome"
        for pol in baselines(inst.action):
            jobs += [(kw, pol, s, env_kwargs) for s in range(a.seeds)]
    t0 = time.perf_counter()
    # group jobs by instance so each worker builds few envs
    with ProcessPoolExecutor(a.workers, initializer=_worker_init) as ex:
        rows = list(ex.map(_run, jobs, chunksize=max(1, a.seeds)))
    wall = time.perf_counter() - t0
    report, md = {"wall_seconds": wall, "seeds": a.seeds, "instances": {}}, []
    k = 0
    for inst in instances:
        n = len(baselines(inst.action)) * a.seeds
        inst_rows, k = rows[k:k + n], k + n
        res = analyse(inst_rows, inst.action)
        res["reference"] = inst_rows[0]["reference"]
        res["episode_seconds"] = float(np.mean([r["seconds"] for r in inst_rows]))
        info = {}
        for s in INSTANCE_SETS.values():
            for split in ("train", "test"):
                if inst in s.split(split):
                    info = {"set": s.name, "version": s.version, "split": split}
        report["instances"][inst.name] = {"instance": asdict(inst), **info, **res, "rows": inst_rows}
        md.append(markdown(inst.name, asdict(inst), res))
        print(md[-1])
    print(f"{len(rows)} episodes in {wall:.0f} s with {a.workers} workers")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, a.json)
    if a.md:
        tmp = a.md + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(md))
        os.replace(tmp, a.md)


if __name__ == "__main__":
    main()
