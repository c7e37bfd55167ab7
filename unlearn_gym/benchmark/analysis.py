"""Aggregates and verdicts of a benchmark: mean ± 95 % CI per (instance, entry, measure), the
paired tests of the seed paper's claims, the Pareto front, the performance numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from unlearn_gym.stats import better, ci95, paired, worse

#: Table 1 measures and which direction is good (+1 higher is better, -1 lower is better); on the
#: forget side a larger distance from the forget data means more forgetting
MEASURES: dict[str, tuple[str, int]] = {
    "forget_fid": ("forget FID", +1),
    "forget_kid": ("forget KID", +1),
    "forget_is": ("forget IS", 0),
    "forget_ssim": ("forget SSIM", -1),
    "forget_score": ("forget score", -1),
    "retain_fid": ("retain FID", -1),
    "retain_kid": ("retain KID", -1),
    "retain_is": ("retain IS", +1),
    "retain_ssim": ("retain SSIM", +1),
    "retain_accuracy": ("retain accuracy", +1),
    "min_retain_accuracy": ("worst digit accuracy", +1),
    "outcome": ("outcome score", +1),
}


def values(cells: list[dict[str, Any]], instance: str, entry: str, measure: str) -> dict[int, float]:
    """Per-seed values of one measure of one entry on one instance (finished cells only)."""
    out = {}
    for c in cells:
        if c["instance"] != instance or c["entry"] != entry or c.get("status") != "ok":
            continue
        v = (c.get("outcome") or {}).get("outcome") if measure == "outcome" else (c.get("metrics") or {}).get(measure)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[int(c["seed"])] = float(v)
    return out


def aggregate(cells: list[dict[str, Any]], instances: list[str], entries: list[str]) -> dict[str, Any]:
    """``{instance: {entry: {measure: {"mean", "ci", "n"}}}}``."""
    agg: dict[str, Any] = {}
    for inst in instances:
        agg[inst] = {}
        for e in entries:
            row = {}
            for m in MEASURES:
                v = values(cells, inst, e, m)
                if v:
                    mean, half = ci95(list(v.values()))
                    row[m] = {"mean": mean, "ci": half, "n": len(v)}
            if row:
                agg[inst][e] = row
    return agg


def _verdict(claim: str, a: str, b: str, cells: list[dict[str, Any]], inst: str, measure: str,
             guards: tuple[str, ...] = (), alpha: float = 0.05) -> dict[str, Any] | None:
    va, vb = values(cells, inst, a, measure), values(cells, inst, b, measure)
    if not va or not vb:
        return None
    direction = MEASURES[measure][1]
    p = paired(va, vb)
    guard_fail = []
    guard_stats = {}
    for g in guards:
        gp = paired(values(cells, inst, a, g), values(cells, inst, b, g))
        guard_stats[g] = gp.to_dict()
        if worse(gp, MEASURES[g][1]):
            guard_fail.append(MEASURES[g][0])
    if p.n < 2:
        verdict = "not testable (fewer than 2 paired seeds)"
    elif better(p, direction, alpha) and not guard_fail:
        verdict = "confirmed"
    elif better(p, direction, alpha):
        verdict = f"not confirmed: better {MEASURES[measure][0]} but significantly worse {', '.join(guard_fail)}"
    elif worse(p, direction):
        verdict = f"not confirmed: {a} is significantly worse"
    else:
        verdict = "not confirmed: no significant difference"
    return {"claim": claim, "instance": inst, "a": a, "b": b, "measure": measure, "direction": direction,
            "paired": p.to_dict(), "guards": guard_stats, "alpha": alpha, "verdict": verdict}


#: the claims checked: (claim, entry a, entry b, measure, guard measures that must not get significantly worse)
CLAIMS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("adaptive λ beats static SISS on forget FID at equal retain quality", "adaptive-vi", "siss", "forget_fid",
     ("retain_fid",)),
    ("adaptive λ beats static SISS on forget KID at equal retain quality", "adaptive-vi", "siss", "forget_kid",
     ("retain_kid",)),
    ("adaptive λ has a lower retain FID than static SISS", "adaptive-vi", "siss", "retain_fid", ()),
    ("adaptive λ has a lower retain KID than static SISS", "adaptive-vi", "siss", "retain_kid", ()),
    ("adaptive λ has a higher retain SSIM than static SISS", "adaptive-vi", "siss", "retain_ssim", ()),
)
RL_ENTRIES = ("ppo-episodic", "ppo-online", "sac-episodic", "sac-online")
#: the static reference of the static-versus-dynamic verdicts: the best constant found by search
TUNED_CONSTANT = "tuned-constant"
#: the tuned dynamic baselines (no training): an open-loop schedule and a feedback controller
TUNED_DYNAMIC = ("tuned-schedule", "tuned-feedback")


def static_vs_dynamic(cells: list[dict[str, Any]], inst: str) -> list[dict[str, Any]]:
    """Static versus dynamic on the outcome score (guarded by the retain FID), where the rows ran.

    * each dynamic row (tuned schedule, tuned feedback, every RL entry) against the tuned constant;
    * every RL entry against the tuned feedback controller;
    * "a dynamic policy beats the tuned constant": confirmed when one of the k comparisons of the
      first kind is confirmed at p < 0.05 / k (Bonferroni: picking the best of k on the same seeds
      would otherwise find a winner by chance).
    """
    out = []
    if not values(cells, inst, TUNED_CONSTANT, "outcome"):
        return out
    dynamic = [e for e in (*TUNED_DYNAMIC, *RL_ENTRIES) if values(cells, inst, e, "outcome")]
    for e in dynamic:
        v = _verdict(f"{e} beats the tuned constant on the outcome score", e, TUNED_CONSTANT, cells, inst,
                     "outcome", ("retain_fid",))
        if v:
            out.append(v)
    if "tuned-feedback" in dynamic:
        for rl in (e for e in RL_ENTRIES if e in dynamic):
            v = _verdict(f"RL ({rl}) beats the tuned feedback controller on the outcome score", rl, "tuned-feedback",
                         cells, inst, "outcome", ("retain_fid",))
            if v:
                out.append(v)
    if len(dynamic) > 1:
        k = len(dynamic)
        best = max(dynamic, key=lambda e: paired(values(cells, inst, e, "outcome"),
                                                 values(cells, inst, TUNED_CONSTANT, "outcome")).mean)
        v = _verdict(f"a dynamic policy (best of {k}: {best}) beats the tuned constant (Bonferroni, p < 0.05/{k})",
                     best, TUNED_CONSTANT, cells, inst, "outcome", ("retain_fid",), alpha=0.05 / k)
        if v:
            out.append(v)
    return out


def claims(cells: list[dict[str, Any]], instances: list[str]) -> list[dict[str, Any]]:
    """Paired verdicts of the seed's claims on every instance (where both entries ran).

    Rules: *confirmed* when the paired t-test over seeds gives p < 0.05 in the claimed direction and
    no guard measure is significantly worse; otherwise *not confirmed*, with the reason. The RL
    claims compare each RL entry with static SISS and with adaptive λ on the outcome score, guarded
    by the retain FID. Nothing is tuned per seed.
    """
    out = []
    for inst in instances:
        for claim, a, b, m, guards in CLAIMS:
            v = _verdict(claim, a, b, cells, inst, m, guards)
            if v:
                out.append(v)
        for rl in RL_ENTRIES:
            for other in ("siss", "adaptive-vi"):
                v = _verdict(f"RL ({rl}) beats {other} on the outcome score", rl, other, cells, inst, "outcome",
                             ("retain_fid",))
                if v:
                    out.append(v)
        out += static_vs_dynamic(cells, inst)
    return out


def pareto_points(agg_inst: dict[str, Any], x: str = "forget_score", y: str = "retain_fid"
                  ) -> dict[str, tuple[float, float]]:
    """``{entry: (x mean, y mean)}`` of the entries with both measures."""
    return {e: (row[x]["mean"], row[y]["mean"]) for e, row in agg_inst.items() if x in row and y in row}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Entries no other entry dominates (lower or equal on both axes, lower on one)."""
    front = []
    for e, (x, y) in points.items():
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for f, (x2, y2) in points.items() if f != e):
            front.append(e)
    return sorted(front, key=lambda e: points[e][0])


def performance(cells: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time per entry, env steps/s, the env's overhead over the bare method, peak memory and
    the parallel efficiency of each run (a resumed benchmark has several)."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if c.get("status") != "ok":
            continue
        t = c.get("timing") or {}
        row = per[c["entry"]]
        for k in ("unlearn_s", "eval_s", "outcome_s", "peak_rss_mb"):
            if t.get(k) is not None:
                row[k].append(float(t[k]))
        row["total_s"].append(float(c.get("timing_total_s", 0.0)))
        if c.get("env_steps_per_s"):
            row["env_steps_per_s"].append(float(c["env_steps_per_s"]))
        if c.get("train_s") is not None:
            row["train_s"].append(float(c["train_s"]))
    entries = {}
    for e, row in per.items():
        entries[e] = {k: (max(v) if k == "peak_rss_mb" else sum(v) / len(v)) for k, v in row.items() if v}
        entries[e]["cells"] = len(row["total_s"])
    perf: dict[str, Any] = {"entries": entries,
                            "cell_seconds": round(sum(float(c.get("timing_total_s", 0.0)) for c in cells
                                                      if c.get("status") == "ok"), 1)}
    for run in runs:  # the parallel efficiency of each run that computed cells
        if run.get("computed") and run.get("wall_s"):
            run["parallel_efficiency"] = round(run["cell_seconds"] / (run["wall_s"] * max(1, run["workers"])), 3)
    perf["runs"] = runs
    # the env's overhead: the same static λ 0.5 run through the env (policy "constant") and as a method
    if "constant" in entries and "siss" in entries:
        perf["env_overhead_ratio"] = round(entries["constant"]["unlearn_s"] / entries["siss"]["unlearn_s"], 3)
    return perf
