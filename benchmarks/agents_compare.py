"""Trained agents against the no-training policies of the headroom study, on one instance.

Reads agent run folders written by ``python -m agents.train ... --eval-episodes N --eval-seed 0`` and
the JSON of ``benchmarks/headroom.py`` for the same instance and seeds. Evaluation seed s of an agent
and seed s of a headroom policy share mini-batches, noise and timesteps, so differences are paired.
The unit of the agents' statistics is the training seed: each agent seed's mean over the evaluation
seeds, then mean ± 95 % CI (Student t) over the training seeds.

    OMP_NUM_THREADS=1 python benchmarks/agents_compare.py --headroom runs/measure/headroom-b8-h30.json \\
        --runs runs/measure/ppo-b8-h30-s0 runs/measure/ppo-b8-h30-s1 runs/measure/ppo-b8-h30-s2 \\
        --md docs/agents/ppo-b8-h30.md --png-dir docs/agents
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.rl.evaluation import plot_training, plot_trajectory
from unlearn_gym.stats import ci95


def fmt(mean: float, half: float, signed: bool = True) -> str:
    """``+0.123 ± 0.045``."""
    m = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return m + ("" if math.isnan(half) else f" ± {half:.3f}")


def schedule_trajectory(name: str, horizon: int, scale: float) -> tuple[list[float], list[float]]:
    """λ and forget scale per step of a headroom policy (its actions decoded as the env does)."""
    from headroom import policies_for  # benchmarks/ is the script's folder, hence on sys.path

    from unlearn_gym.envs.encoding import decode_action
    from unlearn_gym.policies import PROGRESS_INDEX

    pol = policies_for("lambda+scale")[name]
    lams, scales = [], []
    for t in range(horizon):
        obs = np.zeros(6, dtype=np.float32)
        obs[PROGRESS_INDEX] = t / horizon
        lam, sc = decode_action(pol(obs, 2), 2, (0.05, 0.95), (scale / 10, scale * 10))
        lams.append(lam)
        scales.append(sc)
    return lams, scales


def stochastic_lines(runs: list[str], results: list[dict[str, Any]], instance: str, seeds: list[int]) -> list[str]:
    """Outcome of each trained policy's stochastic version (its training behaviour) and of a uniform
    random policy, on the evaluation seeds (policy noise seeded by ``torch.manual_seed(1000 + seed)``)."""
    import gymnasium as gym
    import torch

    import unlearn_gym  # noqa: F401
    from unlearn_gym.policies import RandomPolicy, rollout
    from unlearn_gym.rl.evaluation import load_policy, run_policy

    env = gym.make("SISSUnlearnMicro-v0", instance=instance)
    lines = ["", "| policy (same evaluation seeds) | outcome (mean ± 95 % CI) | paper return (± CI) |", "|---|---|---|"]
    for path, res in zip(runs, results):
        model, norm, _ = load_policy(path)
        out, ret = [], []
        for s in seeds:
            torch.manual_seed(1000 + s)
            r = run_policy(model, env, s, normalizer=norm, deterministic=False)
            out.append(r["outcome"]["outcome"])
            ret.append(r["paper_return"])
        lines.append(f"| {res['algo']} seed {res['seed']}, stochastic (sampled actions) | {fmt(*ci95(out))} |"
                     f" {fmt(*ci95(ret))} |")
    out, ret = [], []
    for s in seeds:
        r = rollout(env.unwrapped, RandomPolicy(seed=1000 + s, dim=2), seed=s)
        out.append(r["info"]["outcome"]["outcome"])
        beta = env.unwrapped.config["beta"]
        lam = [0.5, *r["lambdas"]]
        ret.append(sum(-min(10.0, max(-10.0, x)) for x in r["losses"])
                   - beta * sum((b - a) ** 2 for a, b in itertools.pairwise(lam)))
    lines.append(f"| uniform random actions | {fmt(*ci95(out))} | {fmt(*ci95(ret))} |")
    env.close()
    return lines


def suite_lines(runs: list[str], results: list[dict[str, Any]], instance: str, named: dict[str, str]) -> list[str]:
    """The evaluation suite (``metrics.json``) of each agent's final model beside the models that the
    best constant, the best schedule and a uniform random policy leave after evaluation seed 0."""
    import copy

    import gymnasium as gym
    from headroom import policies_for

    import unlearn_gym  # noqa: F401
    from unlearn_gym.eval.evaluate import evaluate
    from unlearn_gym.policies import RandomPolicy, rollout
    from unlearn_gym.pretrained import load_pretrained

    metrics = [json.loads((Path(r) / "final" / "metrics.json").read_text()) for r in runs]
    cfg = metrics[0]["config"]
    env = gym.make("SISSUnlearnMicro-v0", instance=instance)
    c = env.unwrapped.config
    reference = load_pretrained(c["preset"], ratio=c["data_ratio"])
    table = [(f"{res['algo']} seed {res['seed']} (final run)",
              res["final"][instance]["final"]["outcome"], m["summary"]) for res, m in zip(results, metrics)]
    pols = {f"{k}: {v.replace('|', '/')}": policies_for(c["action"])[v] for k, v in named.items()}
    pols["uniform random actions"] = RandomPolicy(seed=1000, dim=2)
    for label, pol in pols.items():
        r = rollout(env.unwrapped, pol, seed=0)
        model = copy.deepcopy(env.unwrapped.model).eval()
        rep = evaluate(model, reference, c["preset"], samples_per_label=cfg["samples_per_label"],
                       forget_samples=cfg["forget_samples"], steps=cfg["steps"], seed=cfg["seed"], progress=False)
        table.append((label, r["info"]["outcome"]["outcome"], rep.summary))
    ref = metrics[0]["reference_summary"]
    lines = ["", f"Evaluation suite of the model after evaluation seed 0 (DDIM-{cfg['steps']},"
             f" {cfg['forget_samples']} label-1 + {cfg['samples_per_label']} per other label, noise seed"
             f" {cfg['seed']}; θ_0: trouser {ref['trouser_rate']:.3f}, one {ref['one_rate']:.3f}, digit accuracy"
             f" {ref['retain_accuracy']:.3f}):", "",
             "| model | outcome score (seed 0) | trouser | one | junk | digit accuracy | retain FID | retain SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for label, outcome, sm in table:
        lines.append(f"| {label} | {outcome:+.3f} | {sm['trouser_rate']:.3f} | {sm['one_rate']:.3f} |"
                     f" {sm['junk_rate']:.3f} | {sm['retain_accuracy']:.3f} | {sm['retain_fid']:.1f} |"
                     f" {sm['retain_ssim']:.3f} |")
    env.close()
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headroom", required=True, help="JSON written by benchmarks/headroom.py --json")
    ap.add_argument("--runs", nargs="+", required=True, help="agent run folders (one per training seed)")
    ap.add_argument("--instance", help="instance name (default: the runs' own)")
    ap.add_argument("--md", help="write the markdown table here")
    ap.add_argument("--png-dir", help="write <name>-trajectories.png and <name>-training.png here")
    ap.add_argument("--name", default="ppo", help="prefix of the PNG names")
    ap.add_argument("--suite", action="store_true",
                    help="evaluation suite of the best constant's, best schedule's and a random policy's model after"
                         " evaluation seed 0 beside the agents' final/metrics.json (same sampling settings)")
    ap.add_argument("--stochastic-check", action="store_true",
                    help="also run each policy's stochastic version and a uniform random policy on the same seeds")
    a = ap.parse_args()

    results = [json.loads((Path(r) / "result.json").read_text()) for r in a.runs]
    instance = a.instance or next(iter(results[0]["final"]))
    head = json.loads(Path(a.headroom).read_text())["instances"][instance]
    rows = head["rows"]
    best_c, best_s = head["best_constant"], head["best_schedule"]
    by_policy = {p: {r["seed"]: r for r in rows if r["policy"] == p} for p in head["policies"]}

    agent_seed_means: dict[str, list[float]] = {"outcome": [], "paper_return": [], "d_const": [], "d_sched": []}
    per_seed_lines = []
    for res in results:
        eps = res["final"][instance]["episodes"]
        o = [e["outcome"] for e in eps]
        p = [e["paper_return"] for e in eps]
        dc = [e["outcome"] - by_policy[best_c][e["seed"]]["outcome"] for e in eps]
        ds = [e["outcome"] - by_policy[best_s][e["seed"]]["outcome"] for e in eps]
        for k, v in (("outcome", o), ("paper_return", p), ("d_const", dc), ("d_sched", ds)):
            agent_seed_means[k].append(float(np.mean(v)))
        per_seed_lines.append(
            f"| {res['algo']} seed {res['seed']} | {fmt(*ci95(o))} | {fmt(*ci95(p))} | {fmt(*ci95(dc))} |"
            f" {fmt(*ci95(ds))} | {res['timesteps']} | {res['train_seconds']:.0f} s |")

    def policy_line(name: str, label: str) -> str:
        s = head["policies"][name]
        return (f"| {label}: `{name.replace('|', '/')}` | {fmt(s['outcome'], s['outcome_ci'])} |"
                f" {fmt(s['paper_return'], s['paper_return_ci'])} | | | | |")

    n = len(results)
    extra_lines = stochastic_lines(a.runs, results, instance, sorted(by_policy[best_c])) if a.stochastic_check else []
    if a.suite:
        extra_lines += suite_lines(a.runs, results, instance, {"best constant": best_c, "best schedule": best_s})
    lines = [
        f"Instance `{instance}`; evaluation seeds {sorted(by_policy[best_c])} (paired with the headroom"
        f" study); {n} training seed(s).", "",
        "| policy | outcome (mean ± 95 % CI) | paper return (± CI) | − best constant (paired) |"
        " − best schedule (paired) | training steps | training time |",
        "|---|---|---|---|---|---|---|",
        policy_line(best_c, "best constant"),
        policy_line(best_s, "best schedule"),
        *per_seed_lines,
        f"| **{results[0]['algo']}, {n} training seed{'s' if n > 1 else ''}** |"
        f" **{fmt(*ci95(agent_seed_means['outcome']))}** |"
        f" {fmt(*ci95(agent_seed_means['paper_return']))} | **{fmt(*ci95(agent_seed_means['d_const']))}** |"
        f" **{fmt(*ci95(agent_seed_means['d_sched']))}** | | |",
        "",
        "Per training seed: mean ± 95 % CI over the evaluation seeds. Last row: mean ± 95 % CI over the"
        " training seeds of each seed's mean.",
        *extra_lines,
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        tmp = a.md + ".tmp"
        Path(tmp).write_text(md)
        os.replace(tmp, a.md)
    if a.png_dir:
        out = Path(a.png_dir)
        out.mkdir(parents=True, exist_ok=True)
        horizon = results[0]["final"][instance]["final"]["steps"]
        inst = head["instance"]
        lams: dict[str, Any] = {}
        scales: dict[str, Any] = {}
        for res in results:
            f = res["final"][instance]["final"]
            lams[f"{res['algo']} seed {res['seed']}"] = f["lambdas"]
            scales[f"{res['algo']} seed {res['seed']}"] = f["scales"]
        for label, name in (("best schedule", best_s), ("best constant", best_c)):
            lam, sc = schedule_trajectory(name, horizon, inst["scale"])
            lams[f"{label} ({name})"] = lam
            scales[f"{label} ({name})"] = sc
        plot_trajectory(lams, out / f"{a.name}-trajectories.png", scales=scales, bounds=(0.05, 0.95),
                        title=f"final runs from θ_0 (evaluation seed 0) on {instance}")
        episodes = []
        for res, path in zip(results, a.runs):
            import csv

            with open(Path(path) / "training.csv") as fh:
                for r in csv.DictReader(fh):
                    episodes.append({"timesteps": int(r["timesteps"]), "outcome": float(r["outcome"]),
                                     "paper_return": float(r["paper_return"]), "seed": res["seed"]})
        episodes.sort(key=lambda e: e["timesteps"])
        refs = {f"best constant ({head['policies'][best_c]['outcome']:+.3f})": head["policies"][best_c]["outcome"],
                f"best schedule ({head['policies'][best_s]['outcome']:+.3f})": head["policies"][best_s]["outcome"]}
        plot_training(episodes, out / f"{a.name}-training.png", window=30 * n, references=refs,
                      title=f"{results[0]['algo']} training episodes ({n} seeds pooled) on {instance}")


if __name__ == "__main__":
    main()
