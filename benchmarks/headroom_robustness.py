"""Is "one constant for every instance" an artifact of the searches' shared start? (docs/headroom.md,
"Robustness of the tuned constant to the search's start").

Every tuned-constant search so far (`default`'s set and per-instance searches, D1's) kept the same
point (λ 0.431, ρ 0.979): trial 2 of TPE sampler seed 0, which every search shared. This script
checks that point without that shared start, with the plan committed before it ran:

1. Reproduction check: the v3 tuned constant re-run on one (instance, seed) of each test split must
   give its stored row exactly; then the new policies pair with the stored tuned-constant rows
   (``docs/headroom/tuned-default.json``, ``docs/headroom/designs.json``). Otherwise the tuned
   constant is re-run on the evaluation seeds.
2. Per-instance ρ scans (deterministic, no sampler): on each test instance of `default` and D1,
   values of ρ spaced by a factor 2^(1/4) around the tuned ρ (``scan_steps``; the tuned point is one), at
   the tuned λ, on scan seeds (the study's search + selection seeds, never an evaluation seed). If an
   instance's best scanned ρ is not the tuned one, it is evaluated on that instance's evaluation
   seeds, paired with the tuned constant.
3. The set-level constant search on `default`'s train split re-run with other TPE sampler seeds (the
   same search and selection seeds as v3, so only the sampler changes). Each kept constant that is
   not the v3 point is evaluated on `default`'s test split, paired with the tuned constant.
4. Post hoc (planned after stage 2's numbers, before it ran): a finer scan (``fine_rhos``) between the
   tuned ρ and the edge every stage-2 scan fell off, with stage 2's best-ρ rule and evaluation.

Finished stages are cached in ``--work``; the JSON and tables are rewritten after every stage.

    OMP_NUM_THREADS=1 python benchmarks/headroom_robustness.py
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

from headroom_designs import DESIGNS, natural, runners  # noqa: E402
from tuned_baselines import _cached_search, _log, _search_rows  # noqa: E402

from unlearn_gym.envs.instances import INSTANCE_SETS  # noqa: E402
from unlearn_gym.envs.outcome import OUTCOME_VERSION  # noqa: E402
from unlearn_gym.stats import ci95, fmt_ci, paired  # noqa: E402
from unlearn_gym.tuned import make_policy  # noqa: E402
from unlearn_gym.tuning import EpisodeRunner, summary  # noqa: E402

#: the stored tuned-constant rows of each study: (file, policy name in its rows)
STORED = {"default": ("docs/headroom/tuned-default.json", "tuned-constant"),
          "D1": ("docs/headroom/designs.json", "tuned constant")}
#: the fields a re-run must reproduce exactly
CHECKED = ("outcome", "forget", "retain_mean", "retain_drop", "mean_lambda", "mean_scale", "steps")


@dataclass
class Settings:
    """The study's settings. docs/headroom.md fixed them before the run."""

    sampler_seeds: list[int] = field(default_factory=lambda: [1, 2])
    """TPE sampler seeds of the re-run set-level constant searches on `default` (v3 used 0)."""
    trials: int = 20
    """Trials per re-run set-level search (v3: 40; budget)."""
    search_seeds: list[int] = field(default_factory=lambda: [1000, 1001])
    """Search seeds of the set-level searches: v3's, so only the sampler changes."""
    select_seeds: list[int] = field(default_factory=lambda: [1100, 1101, 1102])
    """Selection seeds of the set-level searches (v3's); the best ``top_k`` trials are re-run on them."""
    top_k: int = 3
    """Trials re-run in a search's selection stage."""
    scan_steps: list[int] = field(default_factory=lambda: list(range(-6, 3)))
    """ρ values of each scan: the tuned ρ times 2^(k/4) for these k (0.346 to 1.38; k = 0 is the tuned ρ)."""
    scan_seeds: dict[str, list[int]] = field(default_factory=lambda: {"default": [1000, 1001, 1100, 1101],
                                                                       "D1": [2000, 2001, 2100, 2101]})
    """Seeds of each scan, per study: that study's search seeds and two of its selection seeds."""
    fine_rhos: list[float] = field(default_factory=lambda: [1.0, 1.03, 1.06, 1.1])
    """Stage 4 (decided after stage 2's scans, before any evaluation of it; docs/headroom.md): ρ values
    between the tuned ρ and the scan's next point 1.16, where every scan fell off its edge. Same λ, seeds,
    best-ρ rule and evaluation as stage 2, over stage 2's points plus these. Empty: skip."""
    eval_seeds: list[int] = field(default_factory=lambda: list(range(10)))
    """Evaluation seeds (test split), those of the stored tuned-constant rows. No search or scan sees them."""
    tuned: dict[str, float] = field(default_factory=lambda: {"lam": -0.15269040132219058,
                                                             "rho": 0.29178822613331223})
    """The tuned constant of `default` v3 and of D1 (action units: λ 0.431, ρ 0.979)."""
    work: str = "runs/robustness"
    """Cache folder of finished stages."""
    json: str = "docs/headroom/robustness.json"
    """Raw rows: every scan, search, selection and evaluation episode."""
    md: str = "docs/headroom/robustness.md"
    """Tables."""


def test_split(study: str) -> list[str]:
    if study == "default":
        return [i.name for i in INSTANCE_SETS["default"].test]
    return list(DESIGNS[study]["test"])


def stored_rows(study: str) -> dict[tuple[str, int], dict[str, Any]]:
    path, name = STORED[study]
    rows = json.loads((ROOT / path).read_text())["rows"]
    return {(r["instance"], r["seed"]): r for r in rows if r["policy"] == name}


def scan_grid(s: Settings) -> list[float]:
    """ρ actions of the scan: the tuned ρ times 2^(k/4) (a[1] → ρ = 0.05·100^((a+1)/2))."""
    return [s.tuned["rho"] + 0.25 * k * math.log10(2.0) for k in s.scan_steps]


def best_rho(points: list[dict[str, Any]], tuned_rho: float) -> dict[str, Any]:
    """The scan point with the best mean; ties go to the point nearest the tuned ρ."""
    return max(points, key=lambda p: (round(p["mean"], 9), -abs(p["rho"] - tuned_rho)))


def _cached(work: Path, key: str, fn: Any) -> Any:
    path = work / f"{key}.json"
    if path.is_file():
        _log(f"{key}: cached ({path})")
        return json.loads(path.read_text())
    out = fn()
    path.write_text(json.dumps(out))
    return out


def study(s: Settings, write: Any) -> dict[str, Any]:
    seen = {x for v in s.scan_seeds.values() for x in v} | set(s.search_seeds) | set(s.select_seeds)
    if set(s.eval_seeds) & seen:
        raise SystemExit(f"evaluation seeds {sorted(set(s.eval_seeds) & seen)} were seen by a scan or search")
    work = Path(s.work)
    work.mkdir(parents=True, exist_ok=True)
    run: dict[str, EpisodeRunner] = {"default": EpisodeRunner({}),
                                     "D1": runners(DESIGNS["D1"]["train"] | DESIGNS["D1"]["test"])["paper"]}
    tuned = make_policy("constant", s.tuned)
    res: dict[str, Any] = {"settings": dataclasses.asdict(s), "outcome_version": OUTCOME_VERSION,
                           "command": " ".join(sys.argv), "tuned_natural": natural(s.tuned["lam"], s.tuned["rho"]),
                           "reproduction": {}, "scans": {}, "searches": {}, "search_rows": {}, "rows": []}
    t0 = time.perf_counter()
    # 1. reproduction check, then the tuned constant's rows to pair with
    base: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    for st in ("default", "D1"):
        stored = stored_rows(st)
        inst = test_split(st)[0]
        new = run[st].run(tuned, inst, s.eval_seeds[0])
        old = stored[(inst, s.eval_seeds[0])]
        same = all(new[k] == old[k] for k in CHECKED)
        res["reproduction"][st] = {"instance": inst, "seed": s.eval_seeds[0], "identical": same,
                                   "new": new, "stored": old}
        _log(f"reproduction {st} {inst}: {'identical' if same else 'DIFFERENT'} ({new['outcome']:+.4f} vs"
             f" {old['outcome']:+.4f})")
        if same:
            base[st] = {k: v for k, v in stored.items() if k[1] in s.eval_seeds}
        else:
            base[st] = {(i, x): run[st].run(tuned, i, x) for i in test_split(st) for x in s.eval_seeds}
        for r in base[st].values():
            res["rows"].append({**r, "study": st, "policy": "tuned constant",
                                "source": STORED[st][0] if same else "re-run"})
    write(res)
    # 2. per-instance ρ scans at the tuned λ
    for st in ("default", "D1"):
        for inst in test_split(st):
            def scan(st: str = st, inst: str = inst) -> dict[str, Any]:
                points = []
                for a in scan_grid(s):
                    pol = make_policy("constant", {"lam": s.tuned["lam"], "rho": a})
                    rows = [run[st].run(pol, inst, x) for x in s.scan_seeds[st]]
                    points.append({"rho": a, "rho_natural": natural(s.tuned["lam"], a)[1],
                                   "mean": float(np.mean([r["outcome"] for r in rows])), "rows": rows})
                    _log(f"scan {inst} ρ {points[-1]['rho_natural']:.3f}: {points[-1]['mean']:+.3f}")
                return {"study": st, "instance": inst, "points": points}
            sc = _cached(work, f"scan-{inst}", scan)
            b = best_rho(sc["points"], s.tuned["rho"])
            sc["best"] = {"rho": b["rho"], "rho_natural": b["rho_natural"], "mean": b["mean"],
                          "is_tuned": abs(b["rho"] - s.tuned["rho"]) < 1e-12}
            res["scans"][inst] = sc
            if not sc["best"]["is_tuned"]:
                pol = make_policy("constant", {"lam": s.tuned["lam"], "rho": b["rho"]})
                rows = _cached(work, f"scan-eval-{inst}",
                               lambda st=st, inst=inst, pol=pol: [run[st].run(pol, inst, x) for x in s.eval_seeds])
                res["rows"] += [{**r, "study": st, "policy": "scan-best ρ (per instance)"} for r in rows]
                _log(f"eval {inst} scan-best ρ {b['rho_natural']:.3f}:"
                     f" {fmt_ci(*ci95([r['outcome'] for r in rows]))}")
            write(res)
    # 3. the set-level constant search on `default`, other sampler seeds
    train = [i.name for i in INSTANCE_SETS["default"].train]
    for seed in s.sampler_seeds:
        r = _cached_search(work, f"default-constant-sampler{seed}", family="constant", instances=train,
                           seeds=s.search_seeds, trials=s.trials, sampler_seed=seed, select_seeds=s.select_seeds,
                           top_k=s.top_k, runner=run["default"])
        key = f"sampler {seed}"
        res["searches"][key] = summary(r) | {"natural": natural(r["params"]["lam"], r["params"]["rho"])}
        res["search_rows"][key] = _search_rows(r)
        if r["params"] != s.tuned:
            pol = make_policy("constant", r["params"])
            rows = _cached(work, f"default-constant-sampler{seed}-eval",
                           lambda pol=pol: [run["default"].run(pol, i, x) for i in test_split("default")
                                            for x in s.eval_seeds])
            res["rows"] += [{**x, "study": "default", "policy": f"set constant, {key}"} for x in rows]
            _log(f"eval default {key}: {fmt_ci(*ci95([x['outcome'] for x in rows]))}")
        write(res)
    # 4. (post hoc, decided after the scans) a finer scan between the tuned ρ and 1.16
    for st in ("default", "D1") if s.fine_rhos else ():
        for inst in test_split(st):
            def fine(st: str = st, inst: str = inst) -> dict[str, Any]:
                points = []
                for rho in s.fine_rhos:
                    a = math.log10(rho / 0.05) - 1.0
                    pol = make_policy("constant", {"lam": s.tuned["lam"], "rho": a})
                    rows = [run[st].run(pol, inst, x) for x in s.scan_seeds[st]]
                    points.append({"rho": a, "rho_natural": rho,
                                   "mean": float(np.mean([r["outcome"] for r in rows])), "rows": rows})
                    _log(f"fine scan {inst} ρ {rho:.3f}: {points[-1]['mean']:+.3f}")
                return {"study": st, "instance": inst, "points": points}
            fs = _cached(work, f"fine-{'-'.join(map(str, s.fine_rhos))}-{inst}", fine)
            b = best_rho(res["scans"][inst]["points"] + fs["points"], s.tuned["rho"])
            fs["best"] = {"rho": b["rho"], "rho_natural": b["rho_natural"], "mean": b["mean"],
                          "is_tuned": abs(b["rho"] - s.tuned["rho"]) < 1e-12}
            res.setdefault("fine_scans", {})[inst] = fs
            if not fs["best"]["is_tuned"]:
                pol = make_policy("constant", {"lam": s.tuned["lam"], "rho": b["rho"]})
                rows = _cached(work, f"fine-eval-{b['rho_natural']:.3f}-{inst}",
                               lambda st=st, inst=inst, pol=pol: [run[st].run(pol, inst, x) for x in s.eval_seeds])
                res["rows"] += [{**r, "study": st, "policy": "fine-scan best ρ (per instance, post hoc)"}
                                for r in rows]
                _log(f"eval {inst} fine-scan best ρ {b['rho_natural']:.3f}:"
                     f" {fmt_ci(*ci95([r['outcome'] for r in rows]))}")
            write(res)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["episodes"] = sum(r.episodes for r in run.values())
    return res


def tables(res: dict[str, Any]) -> dict[str, Any]:
    """Per study and scope (each test instance, the set): each policy's mean ± CI and its paired
    difference to the tuned constant. A policy absent on an instance is the tuned constant there
    (its search or scan kept the tuned point), so its difference there is exactly 0."""
    out: dict[str, Any] = {}
    for st in ("default", "D1"):
        rows = [r for r in res["rows"] if r["study"] == st]
        base = {(r["instance"], r["seed"]): r["outcome"] for r in rows if r["policy"] == "tuned constant"}
        names = ["scan-best ρ (per instance)"]
        names += ["fine-scan best ρ (per instance, post hoc)"] if res.get("fine_scans") else []
        names += [f"set constant, sampler {x}" for x in res["settings"]["sampler_seeds"] if st == "default"]
        out[st] = {}
        for scope in [*test_split(st), "set"]:
            def keep(k: tuple[str, int], scope: str = scope) -> bool:
                return scope == "set" or k[0] == scope
            b = {k: v for k, v in base.items() if keep(k)}
            cell: dict[str, Any] = {"tuned constant": dict(zip(("mean", "ci"), ci95(list(b.values())), strict=True))}
            for n in names:
                mine = {(r["instance"], r["seed"]): r["outcome"] for r in rows if r["policy"] == n and keep(
                    (r["instance"], r["seed"]))}
                if n.startswith("set constant") and f"sampler {n.split()[-1]}" not in res["searches"]:
                    continue  # not run (yet)
                a = {k: mine.get(k, v) for k, v in b.items()}  # absent: the tuned constant itself
                cell[n] = dict(zip(("mean", "ci"), ci95(list(a.values())), strict=True))
                cell[n]["same_policy_on"] = sorted({k[0] for k in b if k not in mine})
                cell[n]["vs tuned"] = paired(a, b).to_dict()
            out[st][scope] = cell
    return out


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = ["# Robustness of the tuned constant to the search's start", "",
             f"Tuned constant λ {res['tuned_natural'][0]:.3f}, ρ {res['tuned_natural'][1]:.3f}. Outcome v"
             f"{res['outcome_version']}; mean ± 95 % CI; differences paired by (instance, seed) with the tuned"
             " constant; **yes**: the CI excludes 0.", "", "## Reproduction check", ""]
    for st, r in res["reproduction"].items():
        lines.append(f"- {st}: `{r['instance']}` seed {r['seed']}: re-run {r['new']['outcome']:+.6f}, stored"
                     f" {r['stored']['outcome']:+.6f} → {'identical' if r['identical'] else 'different (re-run)'}")
    lines += ["", f"## Per-instance ρ scans (λ {res['tuned_natural'][0]:.3f}; mean outcome over the scan seeds)", ""]
    if res["scans"]:
        grid = [p["rho_natural"] for p in next(iter(res["scans"].values()))["points"]]
        lines += ["| instance (seeds) | " + " | ".join(f"ρ {g:.3g}" for g in grid) + " | best ρ |",
                  "|---|" + "---|" * (len(grid) + 1)]
        for inst, sc in res["scans"].items():
            cells = [f"{p['mean']:+.3f}" + ("*" if abs(p["rho"] - s["tuned"]["rho"]) < 1e-12 else "")
                     for p in sc["points"]]
            seeds = s["scan_seeds"][sc["study"]]
            lines.append(f"| `{inst}` ({', '.join(map(str, seeds))}) | " + " | ".join(cells)
                         + f" | {sc['best']['rho_natural']:.3g}{' (tuned)' if sc['best']['is_tuned'] else ''} |")
        lines += ["", "\\* the tuned ρ."]
    if res.get("fine_scans"):
        grid = [p["rho_natural"] for p in next(iter(res["fine_scans"].values()))["points"]]
        lines += ["", "## Finer scan between the tuned ρ and 1.16 (post hoc: decided after the scans above)", "",
                  "| instance | ρ 0.979 (above) | " + " | ".join(f"ρ {g:.3g}" for g in grid)
                  + " | ρ 1.16 (above) | best ρ of both scans |", "|---|" + "---|" * (len(grid) + 3)]
        for inst, fs in res["fine_scans"].items():
            pts = {round(p["rho_natural"], 3): p["mean"] for p in res["scans"][inst]["points"]}
            lines.append(f"| `{inst}` | {pts[0.979]:+.3f} | " + " | ".join(f"{p['mean']:+.3f}" for p in fs["points"])
                         + f" | {pts[1.164]:+.3f} | {fs['best']['rho_natural']:.3g}"
                         + f"{' (tuned)' if fs['best']['is_tuned'] else ''} |")
    if res["searches"]:
        lines += ["", "## Set-level constant search on `default`'s train split, other TPE sampler seeds", "",
                  "| sampler seed | kept λ, ρ | kept trial | search value → selection seeds | mean (20 episodes) |",
                  "|---|---|---|---|---|"]
        for k, r in res["searches"].items():
            c = next(x for x in r["selection"] if x["number"] == r["chosen_trial"])
            lines.append(f"| {k.split()[-1]} | {r['natural'][0]:.3f}, {r['natural'][1]:.3f} | {r['chosen_trial']} |"
                         f" {c['search_value']:+.3f} → {c['select_value']:+.3f} | {r['value']:+.3f} |")
        lines.append("")
        for k, r in res["searches"].items():
            b = r["budget"]
            lines.append(f"- {k}: {b['trials']} trials × {b['episodes_per_trial']} = {b['search_episodes']} search"
                         f" + {b['selection_episodes']} selection ({r['wall_s']:.0f} s)")
    t = tables(res)
    lines += ["", f"## Evaluation: test splits, seeds {s['eval_seeds'][0]}-{s['eval_seeds'][-1]}", ""]
    for st, scopes in t.items():
        names = list(scopes["set"])
        head = " | ".join(f"`{x}`" if x != "set" else "set" for x in scopes)
        lines += [f"**{st}**", "", f"| policy | {head} |", "|---|" + "---|" * len(scopes)]
        for n in names:
            cells = []
            for x in scopes:
                c = scopes[x][n]
                same = x != "set" and x in c.get("same_policy_on", [])
                cells.append(fmt_ci(c["mean"], c["ci"]) + (" (= tuned)" if same else ""))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        for n in names[1:]:
            cells = []
            for x in scopes:
                c = scopes[x][n]["vs tuned"]
                sig = c["n"] >= 2 and math.isfinite(c["ci"]) and abs(c["mean"]) > c["ci"]
                cells.append(fmt_ci(c["mean"], c["ci"]) + (" **yes**" if sig else ""))
            lines.append(f"| {n} − tuned constant | " + " | ".join(cells) + " |")
        lines.append("")
    if "wall_s" in res:
        lines.append(f"Wall {res['wall_s']:.0f} s, {res['episodes']} episodes run (one thread; cached stages not"
                     " counted).")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Settings):
        d = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        name = f"--{f.name.replace('_', '-')}"
        if isinstance(d, dict):
            p.add_argument(name, type=json.loads, default=d, metavar="JSON")
        elif isinstance(d, list):
            p.add_argument(name, nargs="+", type=type(d[0]), default=d)
        else:
            p.add_argument(name, type=type(d), default=d)
    return Settings(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    s = parse(argv)
    torch.set_num_threads(1)

    def write(res: dict[str, Any]) -> None:
        Path(s.json).write_text(json.dumps(res) + "\n")
        Path(s.md).write_text(markdown(res))

    res = study(s, write)
    write(res)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
