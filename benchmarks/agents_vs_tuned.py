"""RL agents against the tuned baselines on the benchmark track (issue 17, item 5).

Trains each algorithm on the ``default`` set's train split with several training seeds, then plays
the frozen policy on the test split's instances with evaluation seeds 0-9: the (instance, seed)
episodes of ``docs/headroom/tuned-default.json``, whose tuned constant, tuned schedule, tuned
feedback and default constant rows they are paired with. The unit of an agent's statistics is the
training seed (its mean over the 20 test episodes), then mean ± 95 % CI over training seeds; the
paired difference to a baseline is taken per training seed over the same 20 episodes first.

    OMP_NUM_THREADS=1 python benchmarks/agents_vs_tuned.py train --algos ppo sac --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/agents_vs_tuned.py report --md docs/agents/vs-tuned.md

The plan (settings, seeds, budget) is in docs/agents.md, "Against the tuned baselines"; a run folder
that already has ``result.json`` is not trained again.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUNED = ROOT / "docs" / "headroom" / "tuned-default.json"


@dataclass
class Settings:
    """The study's settings (fixed in docs/agents.md before any run)."""

    algos: list[str] = field(default_factory=lambda: ["ppo", "sac", "recurrentppo"])
    """Algorithms (stable-baselines3 / sb3-contrib names of agents.train)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Training seeds."""
    timesteps: int = 12000
    """Training env steps per run: about one tuned family's search cost (356 episodes of 20-50 steps)."""
    out: str = "runs/agents-vs-tuned"
    """Folder of the run folders (<algo>-s<seed>)."""
    eval_seeds: int = 10
    """Evaluation seeds 0..n-1 per test instance (those of docs/headroom/tuned-default.json)."""


#: per-algorithm overrides: γ near 1 (one terminal reward per 20-50 steps), observation normalisation,
#: the unitless observation (ratios to θ_0, remaining budget, instance features), and for the
#: Gaussian policies a small initial action std so that exploration does not sit at a destructive ρ
OVERRIDES: dict[str, list[str]] = {
    "ppo": ["gamma=0.999", "normalize=true", "policy_kwargs.log_std_init=-1.0", "n_steps=256"],
    "recurrentppo": ["gamma=0.999", "normalize=true", "policy_kwargs.log_std_init=-1.0", "n_steps=256"],
    "sac": ["gamma=0.999", "normalize=true", "learning_starts=500"],
}
ENV_OVERRIDES = ["env_kwargs.observation=unitless"]


def run_dir(s: Settings, algo: str, seed: int) -> Path:
    return ROOT / s.out / f"{algo}-s{seed}"


def train(s: Settings) -> None:
    """Train every (algorithm, seed) whose run folder has no ``result.json`` yet, one after another."""
    for algo in s.algos:
        for seed in s.seeds:
            out = run_dir(s, algo, seed)
            if (out / "result.json").is_file():
                print(f"{out.name}: done already")
                continue
            cmd = [sys.executable, "-m", "agents.train", "--algo", algo, "--instances", "default:train",
                   "--timesteps", str(s.timesteps), "--seed", str(seed), "--out", str(out),
                   "--eval-episodes", str(s.eval_seeds), "--eval-seed", "0", "--eval-samples", "0",
                   "--no-progress-bar", "--no-tensorboard"]
            for o in OVERRIDES.get(algo, []) + ENV_OVERRIDES:
                cmd += ["--set", o]
            print(" ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)


def _ci(vals: list[float]) -> tuple[float, float]:
    from unlearn_gym.stats import ci95

    return ci95(vals)


def _fmt(m: float, h: float) -> str:
    return f"{m:+.3f}" + ("" if not math.isfinite(h) else f" ± {h:.3f}")


def agent_rows(s: Settings, algo: str) -> dict[int, dict[tuple[str, int], float]]:
    """training seed -> {(instance, eval seed): outcome} of the finished runs."""
    out = {}
    for seed in s.seeds:
        path = run_dir(s, algo, seed) / "result.json"
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        out[seed] = {(inst, int(e["seed"])): float(e["outcome"]) for inst, r in res["final"].items()
                     for e in r["episodes"] if e.get("outcome") is not None}
    return out


def tuned_rows() -> dict[str, dict[tuple[str, int], float]]:
    """policy -> {(instance, seed): outcome} of docs/headroom/tuned-default.json."""
    d = json.loads(TUNED.read_text())
    rows: dict[str, dict[tuple[str, int], float]] = {}
    for r in d["rows"]:
        rows.setdefault(r["policy"], {})[(r["instance"], int(r["seed"]))] = float(r["outcome"])
    return rows


def _pick(rows: dict[str, dict], prefix: str) -> str:
    return next(p for p in rows if p.startswith(prefix))


def report(s: Settings, md: str | None, png: str | None) -> str:
    """The comparison table (and the learning curves) of the finished runs."""
    base = tuned_rows()
    names = {"default constant": _pick(base, "default constant"), "tuned constant": _pick(base, "tuned-constant"),
             "tuned schedule": _pick(base, "tuned-schedule"), "tuned feedback": _pick(base, "tuned-feedback")}
    lines = ["| policy | training seeds | outcome (test, mean ± 95 % CI) | − tuned constant | − tuned feedback |"
             " gap closed (default → tuned constant) | training episodes |", "|---|---|---|---|---|---|---|"]
    keys = sorted(next(iter(base.values())))
    default = base[names["default constant"]]
    tc = base[names["tuned constant"]]
    gap = sum(tc[k] - default[k] for k in keys) / len(keys)
    raw: list[str] = []
    for label, pol in names.items():
        m, h = _ci([base[pol][k] for k in keys])
        lines.append(f"| {label} (`{pol}`) | — | {_fmt(m, h)} | | | | |")
    for algo in s.algos:
        runs = agent_rows(s, algo)
        if not runs:
            continue
        per_seed, d_tc, d_fb, closed, eps = [], [], [], [], []
        for seed, r in runs.items():
            ks = [k for k in keys if k in r]
            mean = sum(r[k] for k in ks) / len(ks)
            per_seed.append(mean)
            d_tc.append(sum(r[k] - tc[k] for k in ks) / len(ks))
            d_fb.append(sum(r[k] - base[names["tuned feedback"]][k] for k in ks) / len(ks))
            closed.append(sum(r[k] - default[k] for k in ks) / len(ks) / gap if gap else math.nan)
            res = json.loads((run_dir(s, algo, seed) / "result.json").read_text())
            eps.append(res.get("training_episodes", 0))
        lines.append(f"| {algo} | {len(runs)} | {_fmt(*_ci(per_seed))} | {_fmt(*_ci(d_tc))} | {_fmt(*_ci(d_fb))} |"
                     f" {_fmt(*_ci(closed))} | {sum(eps) / len(eps):.0f} |")
        raw.append(f"| {algo} | " + " / ".join(f"{m:+.3f}" for m in per_seed) + " | "
                   + " / ".join(f"{d:+.3f}" for d in d_tc) + " | " + " / ".join(str(e) for e in eps) + " |")
    lines += ["", "Every run (training seeds in order):", "",
              "| agent | outcome per training seed | − tuned constant per seed | training episodes per seed |",
              "|---|---|---|---|", *raw]
    text = "\n".join(lines) + "\n"
    if md:
        Path(md).write_text(text)
    if png:
        curves(s, png, {k: sum(base[p][kk] for kk in keys) / len(keys) for k, p in names.items()})
    return text


def curves(s: Settings, png: str, lines: dict[str, float]) -> None:
    """Outcome of the training episodes against env steps (moving mean over 20 episodes) per run, with
    the tuned baselines' test means as horizontal lines and one family's search cost marked."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unlearn_gym.envs.instances import get_instance, resolve_instances

    d = json.loads(TUNED.read_text())
    budget = d["budgets"]["constant"]
    horizons = [get_instance(n).horizon for n in resolve_instances("default:train")]
    search_steps = (budget["search_episodes"] + budget["selection_episodes"]) * sum(horizons) / len(horizons)
    fig, axes = plt.subplots(1, len(s.algos), figsize=(5 * len(s.algos), 3.6), sharey=True, squeeze=False)
    for ax, algo in zip(axes[0], s.algos, strict=True):
        for seed in s.seeds:
            path = run_dir(s, algo, seed) / "training.csv"
            if not path.is_file():
                continue
            rows = [r for r in csv.DictReader(path.open()) if r.get("outcome") not in (None, "")]
            x = [int(r["timesteps"]) for r in rows]
            y = [float(r["outcome"]) for r in rows]
            sm = [sum(y[max(0, i - 19):i + 1]) / len(y[max(0, i - 19):i + 1]) for i in range(len(y))]
            ax.plot(x, sm, lw=1, label=f"seed {seed}")
        for (label, v), style in zip(lines.items(), ("--", "-", ":", "-."), strict=True):
            ax.axhline(v, color="k", ls=style, lw=0.8, label=f"{label} (test)")
        ax.axvline(search_steps, color="grey", lw=0.8, label="one tuned family's search cost")
        ax.set_title(algo)
        ax.set_xlabel("env steps")
    axes[0][0].set_ylabel("training-episode outcome (train split)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("train", "report"))
    ap.add_argument("--algos", nargs="+", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--timesteps", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--png", default=None)
    a = ap.parse_args()
    s = Settings()
    for k in ("algos", "seeds", "timesteps", "out"):
        if getattr(a, k) is not None:
            setattr(s, k, getattr(a, k))
    if a.what == "train":
        train(s)
    else:
        print(report(s, a.md, a.png))


if __name__ == "__main__":
    main()
