"""``report.md`` and ``results.json`` of a benchmark (figures: :mod:`unlearn_gym.benchmark.figures`)."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

from unlearn_gym.benchmark.analysis import MEASURES, aggregate, claims, pareto_front, pareto_points, performance
from unlearn_gym.benchmark.cells import CellSpec, horizon_of
from unlearn_gym.benchmark.forgetting import forget_table
from unlearn_gym.checkpoints import atomic_write_bytes, versions, write_json
from unlearn_gym.stats import fmt_ci

TABLE_ROWS = {"forget set": ("forget_fid", "forget_kid", "forget_is", "forget_ssim", "forget_score"),
              "retain set": ("retain_fid", "retain_kid", "retain_is", "retain_ssim", "retain_accuracy",
                             "min_retain_accuracy")}
PER_CLASS_ENTRIES = ("baseline", "adaptive-vi", "siss", "ppo-episodic")


def write_report(cfg: Any, cells: list[CellSpec], results: dict[str, dict[str, Any]], failed: list[dict[str, Any]],
                 skipped: list[dict[str, str]], runs: list[dict[str, Any]],
                 current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``results.json``, ``report.md`` and the PNGs into ``cfg.out``; return the results.

    :param cfg: the :class:`~unlearn_gym.benchmark.runner.BenchmarkConfig`.
    :param cells: every cell of the configuration.
    :param results: finished cells by key.
    :param failed: cells that failed in this run.
    :param skipped: (entry, instance) pairs the entry cannot serve.
    :param runs: every run of this benchmark folder, the current one last (wall time, executor,
        workers, command, cells computed).
    :param current: this run's record (``results.json["run"]``; default the last of ``runs``; a
        rerun that computed nothing is not added to ``runs``).
    """
    from unlearn_gym.benchmark import figures

    out = Path(cfg.out)
    keys = [s.key() for s in cells]
    done = [results[k] for k in keys if k in results]
    instances = list(dict.fromkeys(s.instance.name for s in cells))
    entries = list(dict.fromkeys(s.entry.name for s in cells))
    titles = {s.entry.name: s.entry.title for s in cells}
    agg = aggregate(done, instances, entries)
    verdicts = claims(done, instances)
    perf = performance(done, runs)
    fronts = {i: pareto_front(pareto_points(agg[i])) for i in instances}
    figs: dict[str, str] = {}
    for inst in instances:
        tag = f"-{inst}" if len(instances) > 1 else ""
        p = figures.pareto_plot(agg[inst], titles, out / f"pareto{tag}.png", title=f"Pareto front on {inst}")
        if p:
            figs[f"pareto{tag}"] = p.name
        p = figures.lambda_plot([c for c in done if c["instance"] == inst], titles, out / f"lambda{tag}.png",
                                title=f"λ per step on {inst} (mean over seeds)")
        if p:
            figs[f"lambda{tag}"] = p.name
    p = figures.time_plot(perf["entries"], titles, out / "time.png")
    if p:
        figs["time"] = p.name
    results_json = {
        "config": cfg.to_dict(), "runs": perf["runs"], "run": current or runs[-1],
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": versions(), "instances": {s.instance.name: s.to_dict()["instance"] for s in cells},
        "aggregate": agg, "claims": verdicts, "pareto_front": fronts, "performance": perf, "figures": figs,
        "skipped": skipped, "failed": failed, "cells": done,
    }
    write_json(out / "results.json", results_json)
    atomic_write_bytes(out / "report.md", render(results_json, cells, titles).encode())
    return results_json


def _cell(row: dict[str, Any] | None, m: str) -> str:
    """One table cell: mean ± CI of measure ``m`` of an aggregated row, ``–`` when absent."""
    if not row or m not in row:
        return "–"
    return fmt_ci(row[m]["mean"], row[m]["ci"])


def render(r: dict[str, Any], cells: list[CellSpec], titles: dict[str, str]) -> str:
    """The markdown report of a ``results.json`` dict."""
    L = ["# unlearn-gym benchmark", ""]
    L += _header(r)
    L += _claims(r)
    by_inst: dict[str, CellSpec] = {}
    for c in cells:
        by_inst.setdefault(c.instance.name, c)
    for inst, spec in by_inst.items():
        L += _instance_section(r, inst, spec, cells, titles)
    order = list(dict.fromkeys(c.entry.name for c in cells))
    forget = forget_table(r["cells"], order)
    L += ["", *forget] if forget else []
    L += _performance(r, titles)
    L += _skipped_and_failed(r)
    L.append("")
    return "\n".join(L)


def _header(r: dict[str, Any]) -> list[str]:
    """Command, runs and wall time, seeds and evaluation settings, and which direction of each measure is better."""
    cfg, run = r["config"], r["run"]
    s = cfg["settings"]
    seeds = list(range(cfg["seed0"], cfg["seed0"] + cfg["seeds"]))
    # every instance is of cfg's model family (resolve_bench_instances); a VAE is not sampled by DDIM
    sampler = "VAE prior samples (no DDIM)" if cfg.get("model") == "cvae" else f"DDIM-{s['eval_steps']}"
    runs = r.get("runs") or [run]
    made = next((x for x in runs if x.get("computed")), run)
    return [
        f"Command: `{made.get('command') or 'run_benchmark(...)'}`  ",
        f"Report written {r['date']}; {sum(x['computed'] for x in runs)} cells computed in"
        f" {sum(x['wall_s'] for x in runs):.0f} s of wall time over {len(runs)} run(s)"
        f" ({made['executor']} executor, {made['workers']} worker(s)).  ",
        f"Seeds {seeds}; every cell is mean ± 95 % CI (Student t over seeds; no CI with one seed)."
        f" Evaluation: {s['eval_samples']} samples per retain label,"
        f" {s['eval_forget_samples'] or 6 * s['eval_samples']} of the forget label, {sampler},"
        f" noise seed {s['eval_seed']} for every cell (common random numbers); FID/KID/IS on the shipped"
        " classifier's features. Outcome score: the env's (`unlearn_gym.envs.outcome`)."
        + (" **Quick run** (`--quick`): fewer samples and steps, numbers are indicative." if cfg["quick"] else ""),
        "",
        "Directions: forget FID/KID higher = further from the forget data (more forgetting); forget score"
        " (trouser rate, or the erased digit's accuracy) lower is better; retain FID/KID lower, retain IS,"
        " SSIM and accuracy higher are better; forget SSIM is against the pretrained model's sample from the"
        " same noise (lower = changed more).",
    ]


def _claims(r: dict[str, Any]) -> list[str]:
    """The seed paper's claims: paired difference, p-value and verdict of each."""
    L = ["", "## Statistics: the seed paper's claims, and static versus dynamic", "",
         "Paired over seeds (same seed = same batches and evaluation noise); *confirmed* needs p < 0.05 in the"
         " claimed direction of a paired t-test and no guard measure significantly worse. Static versus dynamic"
         " (where `tuned-*` rows ran): each tuned schedule, tuned feedback and RL row against the tuned constant,"
         " RL against the tuned feedback, and the best dynamic row against the tuned constant at p < 0.05/k"
         " (Bonferroni over the k dynamic rows it was picked from).", "",
         "| instance | claim | a − b (95 % CI) | p | verdict |", "|---|---|---|---|---|"]
    for v in r["claims"]:
        p = v["paired"]
        pv = "–" if p["p"] is None or not math.isfinite(p["p"]) else f"{p['p']:.3g}"
        L.append(f"| {v['instance']} | {v['claim']} | {fmt_ci(p['mean'], p['ci'])} (n={p['n']}) | {pv} |"
                 f" {v['verdict']} |")
    return L


def _instance_section(
    r: dict[str, Any], inst: str, spec: CellSpec, cells: list[CellSpec], titles: dict[str, str]
) -> list[str]:
    """One instance: its settings, Table 1 (forget and retain side), the summary, Pareto front, per class."""
    s, perf = r["config"]["settings"], r["performance"]
    agg = r["aggregate"].get(inst, {})
    ents = [e for e in dict.fromkeys(c.entry.name for c in cells if c.instance.name == inst) if e in agg]
    i = spec.instance
    L = ["", f"## Instance `{inst}`", "",
         f"{i.preset}, task `{i.task}`, contamination ratio {i.data_ratio}, {horizon_of(spec)} steps,"
         f" batch {i.batch_size}, lr {i.lr:g}, rule {i.rule} ({i.scale:g}), action `{i.action}`."
         f" Agents: episodic {s['agent_timesteps']} training steps; online = one run of the budget."]
    table = [e for e in ents if next(c.entry.group for c in cells if c.entry.name == e) == "table"]
    for side, ms in TABLE_ROWS.items():
        L += ["", f"### Table 1 — {side}", "", "| measure | " + " | ".join(titles[e] for e in table) + " |",
              "|---|" + "---|" * len(table)]
        for m in ms:
            L.append(f"| {MEASURES[m][0]} | " + " | ".join(_cell(agg.get(e), m) for e in table) + " |")
    L += ["", "### Summary (one row per entry)", "",
          "| entry | outcome | forget score | retain acc. | retain FID | forget FID | trial episodes |"
          " time / cell (s) | seeds |",
          "|---|---|---|---|---|---|---|---|---|"]
    by_name = {c.entry.name: c.entry for c in cells}
    for e in ents:
        row, pe = agg[e], perf["entries"].get(e, {})
        n = max(v["n"] for v in row.values())
        used = by_name[e].trial_episodes(horizon_of(spec), s["agent_timesteps"])
        L.append(f"| {titles[e]} | {_cell(row, 'outcome')} | {_cell(row, 'forget_score')} |"
                 f" {_cell(row, 'retain_accuracy')} | {_cell(row, 'retain_fid')} | {_cell(row, 'forget_fid')} |"
                 f" {'–' if used is None else used} | {pe.get('total_s', math.nan):.0f} | {n} |")
    L += ["", "Trial episodes: the episodes a row used before the evaluated run (a tuned baseline's committed"
          " search and selection, an episodic agent's training; docs/headroom.md states the task as"
          " reaching the tuned constant's outcome with as few as possible)."]
    L += _pareto(r, inst, titles)
    L += _per_class(r["cells"], inst, titles)
    return L


def _pareto(r: dict[str, Any], inst: str, titles: dict[str, str]) -> list[str]:
    """The instance's Pareto front (figure and the entries not dominated) and its λ figure."""
    front = r["pareto_front"].get(inst, [])
    L = ["", "### Pareto front (forget score vs retain FID)", ""]
    if f"pareto-{inst}" in r["figures"] or "pareto" in r["figures"]:
        L.append(f"![Pareto front]({r['figures'].get(f'pareto-{inst}', r['figures'].get('pareto'))})")
        L.append("")
    L.append("Not dominated (no entry has both a lower-or-equal forget score and retain FID, one lower): "
             + (", ".join(titles[e] for e in front) or "–") + ".")
    if f"lambda-{inst}" in r["figures"] or "lambda" in r["figures"]:
        L += ["", f"![λ per step]({r['figures'].get(f'lambda-{inst}', r['figures'].get('lambda'))})"]
    return L


def _performance(r: dict[str, Any], titles: dict[str, str]) -> list[str]:
    """Runs (wall time, workers, parallel efficiency), env overhead and time per entry and phase."""
    perf = r["performance"]
    L = ["", "## Performance", "",
         f"All cells together: {perf['cell_seconds']:.0f} cell-seconds. Cells are independent, so with W workers"
         " and N seeds a run takes about (cells per seed × N × mean cell time) / W; the parallel efficiency"
         " below is the cell-seconds a run computed over its wall time × workers"
         " (`benchmarks/benchmark_scaling.py` measures the scaling). Times are wall times of each cell and"
         " include whatever else the machine ran meanwhile: compare them within one quiet run.", "",
         "| run | finished | executor | workers | cells computed (cached) | cell-seconds | wall (s) | efficiency |",
         "|---|---|---|---|---|---|---|---|"]
    for i, rr in enumerate(perf["runs"], 1):
        eff = f"{rr['parallel_efficiency']:.2f}" if "parallel_efficiency" in rr else "–"
        L.append(f"| {i} | {rr.get('finished', '–')} | {rr['executor']} | {rr['workers']} | {rr['computed']}"
                 f" ({rr['cached']}) | {rr.get('cell_seconds', float('nan')):.0f} | {rr['wall_s']:.0f} | {eff} |")
    L.append("")
    if "env_overhead_ratio" in perf:
        L.append(f"Env overhead: a constant-λ run through the env takes {perf['env_overhead_ratio']:.3f}× the time of"
                 " the same static SISS run as a method (unlearning time only; `benchmarks/env_speed.py`"
                 " measures it in isolation).")
        L.append("")
    L += ["| entry | unlearn (s) | agent training (s) | evaluation (s) | outcome score (s) | total (s) |"
          " env steps/s | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|"]
    for e, pe in perf["entries"].items():
        def f(k: str, fmt: str = ".1f", pe: dict[str, Any] = pe) -> str:
            return format(pe[k], fmt) if k in pe else "–"
        L.append(f"| {titles.get(e, e)} | {f('unlearn_s')} | {f('train_s')} | {f('eval_s')} | {f('outcome_s')} |"
                 f" {f('total_s')} | {f('env_steps_per_s')} | {f('peak_rss_mb', '.0f')} |")
    if "time" in r["figures"]:
        L += ["", f"![time per cell]({r['figures']['time']})"]
    L += ["", "Peak RSS is the worker process's peak so far (workers run several cells)."]
    return L


def _skipped_and_failed(r: dict[str, Any]) -> list[str]:
    """The entries an instance cannot serve, and the cells that raised (last lines of each traceback)."""
    L: list[str] = []
    if r["skipped"]:
        L += ["", "## Not applicable", ""] + [f"- {s['entry']} on {s['instance']}: {s['why']}" for s in r["skipped"]]
    if r["failed"]:
        L += ["", "## Failed cells", "", "These cells raised; every other cell finished. Rerun to retry them.", ""]
        for f_ in r["failed"]:
            L.append(f"- **{f_['entry']} · {f_['instance']} · seed {f_['seed']}**: `{f_['error']}`")
            tb = (f_.get("traceback") or "").strip().splitlines()[-3:]
            if tb:
                L += ["  ```", *[f"  {t}" for t in tb], "  ```"]
    return L


def _per_class(cells: list[dict[str, Any]], inst: str, titles: dict[str, str]) -> list[str]:
    """Appendix-B style per-class tables (mean over seeds) of the main entries."""
    from unlearn_gym.stats import ci95

    L = []
    for e in PER_CLASS_ENTRIES:
        rows = [c["per_class"] for c in cells if c["instance"] == inst and c["entry"] == e and c.get("per_class")]
        if not rows:
            continue
        L += ["", f"#### Per class: {titles.get(e, e)} ({len(rows)} seed(s))", "",
              "| label | FID | KID | IS | SSIM | accuracy | trouser rate |", "|---|---|---|---|---|---|---|"]
        for lab in range(len(rows[0])):
            def col(k: str, lab: int = lab, rows: list = rows) -> str:
                vals = [r[lab][k] for r in rows if r[lab].get(k) is not None]
                return fmt_ci(*ci95(vals)) if vals else "–"
            L.append(f"| {rows[0][lab]['label']} | {col('fid')} | {col('kid')} | {col('inception_score')} |"
                     f" {col('ssim')} | {col('accuracy')} | {col('confident_trouser')} |")
    return L
