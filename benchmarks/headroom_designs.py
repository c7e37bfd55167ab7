"""Instance-set designs searched for closed-loop headroom (issue 17, item 3).

docs/headroom.md, "Designs for closed-loop headroom (issue 17, item 3)", holds the plan, which was
committed before this ran. Design D1 is a *mixed* set of micro trousers instances. They vary what
most plausibly moves the best forget scale ρ: the contamination of the pretrained model (0.1, the
shipped ``ddpm-micro``; 0.5, ``ddpm-micro-r0.5``) and the learning rate (5e-5, 1e-4, 2e-4). All are
B 16, horizon 30, action ``lambda+scale``, outcome reward. The 4 corners are the train split; the 2
lr-1e-4 instances are held out as the test split. The instances are not registered: each is an
explicit env configuration, run through ``unlearn_gym.tuning.EpisodeRunner(make_env=...)``.

1. Search on the train split (``unlearn_gym.tuning.search``, equal budgets): the tuned constant, the
   tuned feedback controller (``unlearn_gym.tuned``) and a contextual constant. The contextual
   constant (:class:`ContextualConstant`, defined here) reads the instance features of the
   ``observation="unitless"`` observation and sets ρ linearly in log10 lr and contamination. It is
   the simplest policy that identifies its instance from the observation and acts on it.
2. Search one constant per test instance (the oracle). Its first trial is the set's constant, and it
   uses search and selection seeds only.
3. Evaluate on the test split with fresh seeds, paired by (instance, seed).
4. Descriptive, after the evaluation: a per-instance constant on each train instance (do the
   corners' best constants differ?).

Every search is cached in ``--work`` (a rerun skips finished searches). Raw rows go to ``--json``
and tables to ``--md``.

    OMP_NUM_THREADS=1 python benchmarks/headroom_designs.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tuned_baselines import _cached_search, _log, _search_rows, tables  # noqa: E402

from unlearn_gym.envs.encoding import UNITLESS_FEATURES  # noqa: E402
from unlearn_gym.envs.outcome import OUTCOME_VERSION  # noqa: E402
from unlearn_gym.policies import ConstantPolicy, Policy  # noqa: E402
from unlearn_gym.stats import ci95, fmt_ci  # noqa: E402
from unlearn_gym.tuned import make_policy  # noqa: E402
from unlearn_gym.tuning import ENV_ID, EpisodeRunner, summary  # noqa: E402


@dataclass
class Settings:
    """The study's settings. docs/headroom.md fixed them before the run."""

    design: str = "D1"
    """Design name: the key of DESIGNS and the prefix of the cached searches."""
    families: list[str] = field(default_factory=lambda: ["constant", "feedback", "context"])
    """Families searched on the train split, each with the same budget."""
    trials: int = 40
    """Optuna TPE trials per family."""
    instance_trials: int = 24
    """Trials per per-instance constant. The first is the set's tuned constant (enqueued)."""
    search_seeds: list[int] = field(default_factory=lambda: [2000, 2001])
    """Seeds every search trial runs. They are disjoint from the evaluation seeds."""
    select_seeds: list[int] = field(default_factory=lambda: [2100, 2101, 2102])
    """Fresh seeds the best ``top_k`` trials of a search are re-run on."""
    top_k: int = 3
    """Trials re-run in a search's selection stage."""
    eval_seeds: list[int] = field(default_factory=lambda: list(range(10)))
    """Evaluation seeds (test split). No search sees them."""
    sampler_seed: int = 0
    """Seed of every TPE sampler."""
    train_oracles: bool = True
    """Also search a constant per train instance, after the evaluation (descriptive only)."""
    work: str = "runs/designs"
    """Cache folder of the finished searches."""
    json: str = "docs/headroom/designs.json"
    """Raw rows: every search episode and every evaluation episode."""
    md: str = "docs/headroom/designs.md"
    """Tables."""


def _micro(ratio: float, lr: float) -> dict[str, Any]:
    return {"task": "trousers", "data_ratio": ratio, "lr": lr, "batch_size": 16, "horizon": 30,
            "action": "lambda+scale", "rule": "ratio", "scale": 0.5, "reward": "outcome"}


#: design -> split -> instance name -> env configuration of SISSUnlearnMicro-v0
DESIGNS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "D1": {
        "train": {"mixed-r0.1-lr5e-5": _micro(0.1, 5e-5), "mixed-r0.1-lr2e-4": _micro(0.1, 2e-4),
                  "mixed-r0.5-lr5e-5": _micro(0.5, 5e-5), "mixed-r0.5-lr2e-4": _micro(0.5, 2e-4)},
        "test": {"mixed-r0.1-lr1e-4": _micro(0.1, 1e-4), "mixed-r0.5-lr1e-4": _micro(0.5, 1e-4)},
    },
}

_UNITLESS = tuple(f.name for f in UNITLESS_FEATURES)
_LR, _RATIO = _UNITLESS.index("log10_lr"), _UNITLESS.index("data_ratio")


@dataclass
class ContextualConstant(Policy):
    """A constant chosen from the instance features of the unitless observation. λ action ``lam``;
    ρ action ``rho + rho_lr·(log10 lr + 4) + rho_ratio·(data_ratio − 0.3)``, so ``rho`` applies at
    lr 1e-4 and contamination 0.3, and ρ changes linearly per decade of lr and per unit of
    contamination. It needs ``observation="unitless"``."""

    lam: float = 0.0
    rho: float = 0.0
    rho_lr: float = 0.0
    rho_ratio: float = 0.0
    dim: int = 2
    name: str = "tuned-context"

    def action(self, progress: float, dim: int) -> np.ndarray:
        return np.clip(np.array([self.lam, self.rho]), -1.0, 1.0)

    def __call__(self, obs: np.ndarray, dim: int = 2) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float64).reshape(-1)
        if o.size != len(_UNITLESS):
            raise ValueError(f"ContextualConstant reads the unitless observation, got {o.size} components")
        rho = self.rho + self.rho_lr * (o[_LR] + 4.0) + self.rho_ratio * (o[_RATIO] - 0.3)
        return np.clip(np.array([self.lam, rho]), -1.0, 1.0).astype(np.float32)


CONTEXT_SPACE = {"lam": (-1.0, 1.0), "rho": (-1.0, 1.0), "rho_lr": (-3.0, 3.0), "rho_ratio": (-3.0, 3.0)}
NAMES = {"constant": "tuned constant", "feedback": "tuned feedback", "context": "contextual constant"}
DEFAULT = "default constant (0, 0)"
ORACLE = "oracle constant (per instance)"
#: (label, a, b): the paired differences a − b, fixed in the plan
COMPARISONS = [
    ("(i) oracle constant − tuned constant", ORACLE, "tuned constant"),
    ("(c) tuned feedback − tuned constant", "tuned feedback", "tuned constant"),
    ("contextual constant − tuned constant", "contextual constant", "tuned constant"),
    ("tuned constant − default constant", "tuned constant", DEFAULT),
]


def natural(a_lam: float, a_rho: float) -> tuple[float, float]:
    """λ and ρ of an action (ρ log-uniform on [0.05, 5])."""
    return 0.5 + 0.45 * a_lam, 0.05 * 100.0 ** ((a_rho + 1.0) / 2.0)


def runners(configs: dict[str, dict[str, Any]]) -> dict[str, EpisodeRunner]:
    """One runner per observation mode. Both modes play the same episodes for a given seed."""
    import gymnasium as gym

    import unlearn_gym  # noqa: F401  (registers the ids)

    def maker(observation: str) -> Any:
        return lambda name: gym.make(ENV_ID, observation=observation, **configs[name])

    return {"paper": EpisodeRunner(make_env=maker("paper")), "unitless": EpisodeRunner(make_env=maker("unitless"))}


def family_search(s: Settings, fam: str, instances: list[str], run: dict[str, EpisodeRunner], key: str,
                  trials: int, enqueue: tuple[dict[str, float], ...] = ()) -> dict[str, Any]:
    kw: dict[str, Any] = {"family": fam, "instances": instances, "seeds": s.search_seeds, "trials": trials,
                          "sampler_seed": s.sampler_seed, "select_seeds": s.select_seeds, "top_k": s.top_k,
                          "runner": run["paper"], "enqueue": enqueue}
    if fam == "context":
        kw.update(runner=run["unitless"], space=CONTEXT_SPACE, factory=lambda p: ContextualConstant(**p))
    return _cached_search(Path(s.work), key, **kw)


def policy_of(fam: str, params: dict[str, float]) -> Policy:
    return ContextualConstant(**params) if fam == "context" else make_policy(fam, params)


def study(s: Settings) -> dict[str, Any]:
    design = DESIGNS[s.design]
    train, test = list(design["train"]), list(design["test"])
    seen = set(s.search_seeds) | set(s.select_seeds)
    if set(s.eval_seeds) & seen:
        raise SystemExit(f"evaluation seeds {sorted(set(s.eval_seeds) & seen)} were seen by a search")
    run = runners(design["train"] | design["test"])
    Path(s.work).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # stage 1: the families on the train split (constant first: the per-instance searches start from it)
    fams: dict[str, Any] = {}
    fams["constant"] = family_search(s, "constant", train, run, f"{s.design}-constant", s.trials)
    const = fams["constant"]["params"]
    # stage 2: the test instances' oracle constants
    oracles: dict[str, Any] = {}
    for inst in test:
        oracles[inst] = family_search(s, "constant", [inst], run, f"{s.design}-constant-{inst}",
                                      s.instance_trials, enqueue=(const,))
    for fam in s.families:
        if fam not in fams:
            fams[fam] = family_search(s, fam, train, run, f"{s.design}-{fam}", s.trials)
    search_wall = time.perf_counter() - t0
    # stage 3: evaluation on the test split, paired by (instance, seed)
    pols: dict[str, tuple[Policy, str]] = {DEFAULT: (ConstantPolicy([0.0, 0.0], dim=2), "paper")}
    for fam, r in fams.items():
        pols[NAMES[fam]] = (policy_of(fam, r["params"]), "unitless" if fam == "context" else "paper")
    rows: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    for inst in test:
        mine = dict(pols) | {ORACLE: (make_policy("constant", oracles[inst]["params"]), "paper")}
        for name, (pol, mode) in mine.items():
            for seed in s.eval_seeds:
                rows.append({"policy": name, **run[mode].run(pol, inst, seed)})
            _log(f"eval {inst} {name}: {fmt_ci(*ci95([r['outcome'] for r in rows[-len(s.eval_seeds):]]))}")
    eval_wall = time.perf_counter() - t1
    # stage 4 (descriptive): the train instances' own constants
    if s.train_oracles:
        for inst in train:
            oracles[inst] = family_search(s, "constant", [inst], run, f"{s.design}-constant-{inst}",
                                          s.instance_trials, enqueue=(const,))
    result = {"design": s.design, "configs": design, "outcome_version": OUTCOME_VERSION, "split": "test",
              "settings": dataclasses.asdict(s), "command": " ".join(sys.argv),
              "search_wall_s": round(search_wall, 1), "eval_wall_s": round(eval_wall, 1),
              "total_wall_s": round(time.perf_counter() - t0, 1),
              "episodes": sum(r.episodes for r in run.values()),
              "params": {NAMES[f]: r["params"] for f, r in fams.items()}
              | {f"{ORACLE}:{i}": r["params"] for i, r in oracles.items()},
              "searches": {f: summary(r) for f, r in fams.items()}
              | {f"constant:{i}": summary(r) for i, r in oracles.items()},
              "rows": rows,
              "search_rows": {k: _search_rows(r) for k, r in
                              [*fams.items(), *((f"constant:{i}", r) for i, r in oracles.items())]}}
    result["tables"] = tables(rows, test, [*pols, ORACLE], COMPARISONS)
    result["oracles"] = oracle_table(oracles, const)
    return result


def oracle_table(oracles: dict[str, Any], const: dict[str, float]) -> list[dict[str, Any]]:
    """Per instance: its own constant against the set's, on that search's episodes (no evaluation seed)."""
    out = []
    for inst, r in oracles.items():
        first = next(t for t in r["trials"] if t["number"] == 0)  # the enqueued set constant
        out.append({"instance": inst, "params": r["params"], "natural": natural(r["params"]["lam"], r["params"]["rho"]),
                    "chosen_trial": r["chosen_trial"], "value": r["value"], "set_constant_search_value": first["value"],
                    "set_natural": natural(const["lam"], const["rho"])})
    return out


def _sig(c: dict[str, Any]) -> str:
    return " **yes**" if c["n"] >= 2 and math.isfinite(c["ci"]) and abs(c["mean"]) > c["ci"] else ""


def markdown(res: dict[str, Any]) -> str:
    t = res["tables"]
    scopes = list(t["policies"])
    head = "| | " + " | ".join(f"`{x}`" if x != "set" else "set" for x in scopes) + " |"
    sep = "|---|" + "---|" * len(scopes)
    seeds = res["settings"]["eval_seeds"]
    lines = [f"# Design {res['design']}: test split, seeds {seeds[0]}-{seeds[-1]} (outcome v{res['outcome_version']})",
             "", f"Search {res['search_wall_s']:.0f} s, evaluation {res['eval_wall_s']:.0f} s, all stages"
             f" {res['total_wall_s']:.0f} s, {res['episodes']} episodes (one thread). Outcome mean ± 95 % CI;"
             " differences paired by (instance, seed). **yes**: the CI excludes 0.", "",
             head.replace("| |", "| policy |"), sep]
    for n in t["policies"]["set"]:
        lines.append(f"| {n} | " + " | ".join(fmt_ci(t["policies"][x][n]["mean"], t["policies"][x][n]["ci"])
                                              if n in t["policies"][x] else "–" for x in scopes) + " |")
    lines += ["", head.replace("| |", "| paired difference |"), sep]
    for label, _, _ in COMPARISONS:
        cells = [fmt_ci(c["mean"], c["ci"]) + _sig(c) if (c := t["comparisons"][x].get(label)) else "–" for x in scopes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per-instance constants (search + selection seeds only; the first trial of each search is the"
              " set's tuned constant):", "",
              "| instance | own constant λ, ρ | chosen trial | its mean (search + selection)"
              " | set constant, search seeds |",
              "|---|---|---|---|---|"]
    for o in res["oracles"]:
        lam, rho = o["natural"]
        lines.append(f"| `{o['instance']}` | {lam:.3f}, {rho:.3f} | {o['chosen_trial']} | {o['value']:+.3f} |"
                     f" {o['set_constant_search_value']:+.3f} |")
    lines += ["", "Parameters (action units; a[0] → λ = 0.5 + 0.45 a, a[1] → ρ = 0.05·100^((a+1)/2)):", ""]
    for k, p in res["params"].items():
        lines.append(f"- {k}: " + ", ".join(f"{n} {v:+.3f}" for n, v in p.items()))
    lines += ["", "Budgets (episodes):", ""]
    for k, r in res["searches"].items():
        b = r["budget"]
        lines.append(f"- {k}: {b['trials']} trials × {b['episodes_per_trial']} = {b['search_episodes']} search"
                     f" + {b['selection_episodes']} selection ({r['wall_s']:.0f} s)")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Settings):
        d = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(d, bool):
            p.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=d)
        elif isinstance(d, list):
            p.add_argument(f"--{f.name.replace('_', '-')}", nargs="+", type=type(d[0]), default=d)
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(d), default=d)
    return Settings(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    s = parse(argv)
    torch.set_num_threads(1)
    res = study(s)
    Path(s.json).write_text(json.dumps(res) + "\n")
    Path(s.md).write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
