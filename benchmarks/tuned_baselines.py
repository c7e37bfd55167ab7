"""Tuned baselines against each other on a set's held-out test split (docs/headroom.md, "v3").

1. Search (Optuna TPE, unlearn_gym.tuning.search) each family — constant, open-loop schedule,
   feedback controller — on the set's train split with search seeds, equal budgets; re-run the
   best ``--top-k`` trials of each on fresh selection seeds and keep the best.
2. Search one constant per instance (train and test instances), on search + selection seeds only:
   the per-instance oracle, what instance variation costs a single constant.
3. Write the parameters (``unlearn_gym/assets/tuned-SET-vV-outcomeO.json``, what
   ``unlearn_gym.tuned.load_tuned`` reads).
4. Evaluate on the test split with the evaluation seeds (disjoint from the above), paired by seed:
   the default constant, the old grid's best schedule, the three tuned policies and the oracle
   constant of each test instance; raw rows to ``--json``, tables to ``--md``.

Every search result is cached in ``--work`` (rerunning skips finished searches).

    OMP_NUM_THREADS=1 python benchmarks/tuned_baselines.py --set default --trials 40 --instance-trials 20
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unlearn_gym.envs.instances import INSTANCE_SETS  # noqa: E402
from unlearn_gym.envs.outcome import OUTCOME_VERSION  # noqa: E402
from unlearn_gym.policies import ConstantPolicy, LinearSchedule, Policy  # noqa: E402
from unlearn_gym.stats import ci95, fmt_ci, paired  # noqa: E402
from unlearn_gym.tuned import ENTRY_NAMES, make_policy, tuned_path  # noqa: E402
from unlearn_gym.tuning import EpisodeRunner, search, summary  # noqa: E402

DEFAULT = "default constant (0, 0)"
GRID = "scale rise (linear -1→+1)"
ORACLE = "oracle constant (per instance)"
#: (label, a, b): paired a − b, fixed before the run (docs/headroom.md, v3 plan)
COMPARISONS = [
    ("(b′) tuned schedule − tuned constant", "tuned-schedule", "tuned-constant"),
    ("(c) tuned feedback − tuned schedule", "tuned-feedback", "tuned-schedule"),
    ("tuned feedback − tuned constant", "tuned-feedback", "tuned-constant"),
    ("oracle constant − tuned constant", ORACLE, "tuned-constant"),
    ("tuned constant − default constant", "tuned-constant", DEFAULT),
    ("grid schedule − tuned constant", GRID, "tuned-constant"),
]


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def _cached_search(work: Path, key: str, **kw: Any) -> dict[str, Any]:
    path = work / f"{key}.json"
    if path.is_file():
        _log(f"{key}: cached ({path})")
        return json.loads(path.read_text())
    res = search(**kw, log=_log)
    path.write_text(json.dumps(res))
    return res


def run(a: argparse.Namespace) -> dict[str, Any]:
    s = INSTANCE_SETS[a.set]
    train = [i.name for i in s.train]
    test = [i.name for i in s.test]
    overlap = set(a.eval_seeds) & (set(a.search_seeds) | set(a.select_seeds))
    if overlap:
        raise SystemExit(f"evaluation seeds {sorted(overlap)} were seen by the search")
    env_kwargs = json.loads(a.env_kwargs) if a.env_kwargs else {}
    runner = EpisodeRunner(env_kwargs)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    families: dict[str, Any] = {}
    for fam in a.families:
        families[fam] = _cached_search(work, f"{a.set}-{fam}", family=fam, instances=train, seeds=a.search_seeds,
                                       trials=a.trials, sampler_seed=a.sampler_seed, select_seeds=a.select_seeds,
                                       top_k=a.top_k, runner=runner)
    per_instance: dict[str, Any] = {}
    for inst in (train + test if a.instance_trials else []):
        per_instance[inst] = _cached_search(work, f"{a.set}-constant-{inst}", family="constant", instances=[inst],
                                            seeds=a.search_seeds, trials=a.instance_trials,
                                            sampler_seed=a.sampler_seed, select_seeds=a.select_seeds,
                                            top_k=a.top_k, runner=runner)
    search_wall = time.perf_counter() - t0
    asset = {
        "format": 1, "set": a.set, "version": s.version, "outcome_version": OUTCOME_VERSION,
        "env_kwargs": env_kwargs, "search_seeds": a.search_seeds, "select_seeds": a.select_seeds,
        "eval_seeds_excluded": a.eval_seeds, "command": " ".join(sys.argv),
        "families": {f: summary(r) for f, r in families.items()},
        "per_instance_constant": {i: summary(r) for i, r in per_instance.items()},
        "search_wall_s": round(search_wall, 1),
    }
    out_asset = Path(a.asset) if a.asset else tuned_path(a.set)
    out_asset.write_text(json.dumps(asset, indent=1) + "\n")
    _log(f"wrote {out_asset} (search {search_wall:.0f} s)")

    pols: dict[str, Policy] = {DEFAULT: ConstantPolicy([0.0, 0.0], dim=2),
                               GRID: LinearSchedule([0.0, -1.0], [0.0, 1.0], dim=2)}
    pols.update({ENTRY_NAMES[f]: make_policy(f, r["params"]) for f, r in families.items()})
    rows: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    for inst in test:
        mine = dict(pols)
        if inst in per_instance:
            mine[ORACLE] = make_policy("constant", per_instance[inst]["params"])
        for name, pol in mine.items():
            for seed in a.eval_seeds:
                rows.append({"policy": name, **runner.run(pol, inst, seed)})
            vals = [r["outcome"] for r in rows if r["policy"] == name and r["instance"] == inst]
            _log(f"eval {inst} {name}: {fmt_ci(*ci95(vals))}")
    eval_wall = time.perf_counter() - t1
    result = {"set": a.set, "version": s.version, "outcome_version": OUTCOME_VERSION, "split": "test",
              "eval_seeds": a.eval_seeds, "env_kwargs": env_kwargs, "command": " ".join(sys.argv),
              "search_wall_s": round(search_wall, 1), "eval_wall_s": round(eval_wall, 1),
              "params": {ENTRY_NAMES[f]: r["params"] for f, r in families.items()}
              | {f"{ORACLE}:{i}": r["params"] for i, r in per_instance.items()},
              "budgets": {f: r["budget"] for f, r in families.items()}
              | {f"constant:{i}": r["budget"] for i, r in per_instance.items()},
              "rows": rows,
              "search_rows": {k: _search_rows(r) for k, r in
                              [*families.items(), *((f"constant:{i}", r) for i, r in per_instance.items())]}}
    result["tables"] = tables(rows, test, list(pols) + ([ORACLE] if per_instance else []))
    return result


def _search_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every episode a search ran: its trials' rows, then the selection stage's."""
    return ([{"number": t["number"], "params": t["params"], "value": t["value"], "rows": t["rows"]}
             for t in res["trials"]] + [{"selection": c["number"], "rows": c["rows"]} for c in res["selection"]])


def tables(rows: list[dict[str, Any]], instances: list[str], names: list[str],
           comparisons: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """Mean ± CI per policy and the paired ``comparisons`` (default: this study's), per instance and over the set."""
    comparisons = COMPARISONS if comparisons is None else comparisons

    def by(name: str, inst: str | None) -> dict[Any, float]:
        return {(r["instance"], r["seed"]): r["outcome"] for r in rows
                if r["policy"] == name and (inst is None or r["instance"] == inst)}

    out: dict[str, Any] = {"policies": {}, "comparisons": {}}
    for scope in [*instances, "set"]:
        inst = None if scope == "set" else scope
        out["policies"][scope] = {n: dict(zip(("mean", "ci"), ci95(list(by(n, inst).values())), strict=True))
                                  for n in names if by(n, inst)}
        out["comparisons"][scope] = {}
        for label, x, y in comparisons:
            if by(x, inst) and by(y, inst):
                out["comparisons"][scope][label] = paired(by(x, inst), by(y, inst)).to_dict()
    return out


def markdown(result: dict[str, Any]) -> str:
    t = result["tables"]
    scopes = list(t["policies"])
    names = list(t["policies"]["set"])
    lines = [f"# Tuned baselines, set `{result['set']}` v{result['version']} (outcome v{result['outcome_version']}),"
             f" test split, seeds {result['eval_seeds'][0]}-{result['eval_seeds'][-1]}", "",
             f"Search {result['search_wall_s']:.0f} s, evaluation {result['eval_wall_s']:.0f} s (one thread)."
             " Outcome mean ± 95 % CI; comparisons paired by (instance, seed).", "",
             "| policy | " + " | ".join(f"`{s}`" if s != "set" else "set (both)" for s in scopes) + " |",
             "|---|" + "---|" * len(scopes)]
    for n in names:
        cells = [fmt_ci(t["policies"][s][n]["mean"], t["policies"][s][n]["ci"]) if n in t["policies"][s] else "–"
                 for s in scopes]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| paired difference | " + " | ".join(f"`{s}`" if s != "set" else "set (both)" for s in scopes)
              + " |", "|---|" + "---|" * len(scopes)]
    for label, _, _ in COMPARISONS:
        cells = []
        for s in scopes:
            c = t["comparisons"][s].get(label)
            if c is None:
                cells.append("–")
                continue
            sig = c["n"] >= 2 and math.isfinite(c["ci"]) and abs(c["mean"]) > c["ci"]
            cells.append(f"{fmt_ci(c['mean'], c['ci'])}{' **yes**' if sig else ''}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Parameters (action units: a[0] → λ = 0.5 + 0.45 a, a[1] → ρ = 0.05·100^((a+1)/2)):", ""]
    for k, p in result["params"].items():
        lines.append(f"- {k}: " + ", ".join(f"{n} {v:+.3f}" for n, v in p.items()))
    lines += ["", "Budgets (episodes):", ""]
    for k, b in result["budgets"].items():
        lines.append(f"- {k}: {b['trials']} trials × {b['episodes_per_trial']} = {b['search_episodes']} search"
                     f" + {b['selection_episodes']} selection")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="default")
    p.add_argument("--families", nargs="+", default=["constant", "schedule", "feedback"])
    p.add_argument("--trials", type=int, default=40, help="trials per family (equal budgets)")
    p.add_argument("--instance-trials", type=int, default=20, help="trials per instance's oracle constant (0: none)")
    p.add_argument("--search-seeds", type=int, nargs="+", default=[1000, 1001])
    p.add_argument("--select-seeds", type=int, nargs="+", default=[1100, 1101, 1102])
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--eval-seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--env-kwargs", default=None, metavar="JSON")
    p.add_argument("--work", default="runs/tuned", help="cache of finished searches")
    p.add_argument("--asset", default=None, help="parameters file (default: the committed asset path)")
    p.add_argument("--json", default=None, help="raw rows (default docs/headroom/tuned-SET.json)")
    p.add_argument("--md", default=None, help="tables (default docs/headroom/tuned-SET.md)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    result = run(a)
    js = Path(a.json or ROOT / f"docs/headroom/tuned-{a.set}.json")
    md = Path(a.md or ROOT / f"docs/headroom/tuned-{a.set}.md")
    js.write_text(json.dumps(result) + "\n")
    md.write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
