"""One-step SFD on ``erase-<digit>``: learning curves of the raw generator and its EMA, over seeds.

Each seed builds the run's setup and the ``sfd`` method directly (as ``unlearn_gym.methods.run``
does) so that the generator can be evaluated *during* the run: every ``--eval-every`` steps the raw
generator G and its EMA are sampled in one pass from fixed noise (seed 0) and classified
(``evaluate`` + :func:`~unlearn_gym.methods.outputs.erase_summary`). The teacher row is the
pretrained DDPM by DDIM-50 from the same noise: the distilled generator must first reproduce it on
the retain digits (the "gap" columns) before its erased-digit rate means forgetting.

``--ema-half-life`` is a fraction of ``--steps`` (decay ``0.5 ** (1 / (f * steps))``); ``--set``
passes any other ``sfd`` parameter (``--set forget_weight=1.0``). ``--config`` names the method's
configuration (default: the preset's); ``--lr``, ``--steps``, ``--ema-half-life`` and ``--set``
override its values. Update time excludes the
evaluations. Example (the default configuration of ``micro``, ``cpu``, on three seeds; the runs
of docs/methods.md, "One-step SFD on a CPU schedule")::

    OMP_NUM_THREADS=1 python benchmarks/sfd_schedule.py --preset micro --digit 6 --seeds 3 4 5 \\
        --samples 100 --eval-every 100 --json docs/results/sfd-micro-erase6/steps300.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from unlearn_gym.diffusion.one_step import OneStepGenerator
from unlearn_gym.eval.evaluate import evaluate
from unlearn_gym.methods import build_setup, get_method, parse_value
from unlearn_gym.methods.outputs import erase_summary
from unlearn_gym.methods.sfd import resolve_config
from unlearn_gym.pretrained import load_pretrained
from unlearn_gym.stats import ci95


def per_digit(model: Any, preset: str, samples: int) -> dict[int, float]:
    """Classifier accuracy per label of ``model``'s samples (fixed noise, seed 0).

    :param model: a DDPM or a one-step generator.
    :param preset: its preset.
    :param samples: samples per label.
    """
    report = evaluate(model, None, preset, samples_per_label=samples, forget_samples=samples, steps=50, seed=0,
                      progress=False, keep_samples=False)
    return {int(r["label"]): float(r["accuracy"]) for r in report.per_class}


def summary(acc: dict[int, float], teacher: dict[int, float], digit: int) -> dict[str, Any]:
    """Erase summary plus the gap to the teacher on the other digits (teacher minus model).

    :param acc: the model's accuracy per label.
    :param teacher: the teacher's.
    :param digit: the erased digit.
    """
    e = erase_summary([{"label": k, "accuracy": v} for k, v in acc.items()], digit)
    gaps = [teacher[k] - acc[k] for k in acc if k != digit]
    return {**e, "mean_gap": sum(gaps) / len(gaps), "max_gap": max(gaps), "per_digit": acc}


def one_seed(a: argparse.Namespace, seed: int, params: dict[str, Any], setup_kw: dict[str, Any],
             teacher: dict[int, float]) -> dict[str, Any]:
    """The curve of one seed: rows at every evaluation step, and the update time."""
    task = f"erase-{a.digit}"
    setup = build_setup(a.preset, task, seed=seed, **setup_kw)
    method = get_method("sfd")(setup, **params)
    curve, seconds = [], 0.0
    for i in range(a.steps):
        t0 = time.perf_counter()
        row = method.step(i)
        seconds += time.perf_counter() - t0
        if not math.isfinite(row["loss"]):
            curve.append({"step": i + 1, "diverged": True})
            break
        if (i + 1) % a.eval_every == 0 or i + 1 == a.steps:
            ts = method.p["t_star"]
            entry: dict[str, Any] = {"step": i + 1, "seconds": round(seconds, 1)}
            for name, net in (("generator", method.generator_net), ("ema", method.ema.module)):
                entry[name] = summary(per_digit(OneStepGenerator(net, ts, setup.schedule), a.preset, a.samples),
                                      teacher, a.digit)
            curve.append(entry)
            g, m = entry["generator"], entry["ema"]
            print(f"seed {seed} step {i + 1} ({seconds:.0f} s): G erased {g['erased_accuracy']:.3f} others"
                  f" {g['other_digit_accuracy']:.3f} min {g['min_other_digit_accuracy']:.3f} | EMA erased"
                  f" {m['erased_accuracy']:.3f} others {m['other_digit_accuracy']:.3f}"
                  f" min {m['min_other_digit_accuracy']:.3f} gap {m['mean_gap']:.3f}", flush=True)
    return {"seed": seed, "seconds": round(seconds, 1), "curve": curve}


def curve_table(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown rows of the learning curve: every evaluation step, means over the seeds.

    :param runs: the seeds' results of :func:`one_seed`.
    """
    lines = ["| step | G erased | G others | G min other | EMA erased | EMA others | EMA min other | EMA gap |",
             "|---|---|---|---|---|---|---|---|"]
    n = min(len(r["curve"]) for r in runs)
    for j in range(n):
        entries = [r["curve"][j] for r in runs]
        if any("ema" not in e for e in entries):
            break
        cells = []
        for out, keys in (("generator", ("erased_accuracy", "other_digit_accuracy", "min_other_digit_accuracy")),
                          ("ema", ("erased_accuracy", "other_digit_accuracy", "min_other_digit_accuracy",
                                   "mean_gap"))):
            cells += [f"{sum(e[out][k] for e in entries) / len(entries):.3f}" for k in keys]
        lines.append(f"| {entries[0]['step']} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--digit", type=int, default=6)
    ap.add_argument("--config", default=None, help="the method's named configuration (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help="generator updates (default: the configuration's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", type=float, default=None, help="generator (and fake-score) learning rate")
    ap.add_argument("--batch-size", type=int, default=None, help="images per update (default: the preset's)")
    ap.add_argument("--ema-half-life", type=float, default=None, help="EMA half-life as a fraction of --steps")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an sfd parameter")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--samples", type=int, default=50, help="evaluation samples per label")
    ap.add_argument("--json", help="write the curves and the final table here")
    a = ap.parse_args()
    params: dict[str, Any] = {}
    if a.config is not None:
        params["config"] = a.config
    for item in a.set:
        key, _, value = item.partition("=")
        params[key] = parse_value(value)
    resolved = resolve_config(a.preset, params)  # the configuration's values, then --set
    if a.steps is None:
        a.steps = int(resolved["steps"])
    if a.ema_half_life is not None:
        params["ema_decay"] = 0.5 ** (1.0 / (a.ema_half_life * a.steps))
    setup_kw: dict[str, Any] = {"max_grad_norm": None, "lr": float(resolved["lr"] if a.lr is None else a.lr)}
    if a.batch_size is not None:
        setup_kw["batch_size"] = a.batch_size
    teacher = per_digit(load_pretrained(a.preset), a.preset, a.samples)
    print(f"{a.preset} erase-{a.digit}, {a.steps} steps, params {params}, setup {setup_kw}; teacher (DDIM-50)"
          f" {summary(teacher, teacher, a.digit)}", flush=True)
    runs = [one_seed(a, s, params, setup_kw, teacher) for s in a.seeds]
    final = {k: [r["curve"][-1].get("ema", {}).get(k, math.nan) for r in runs]
             for k in ("erased_accuracy", "other_digit_accuracy", "min_other_digit_accuracy", "mean_gap")}
    final["seconds"] = [r["seconds"] for r in runs]
    table = {k: ci95(v) for k, v in final.items()}
    print("\nlearning curve (means over the seeds):\n" + "\n".join(curve_table(runs)))
    print("\n| output | erased acc. | other digits acc. | min other acc. | gap to teacher | update time (s) |")
    print("|---|---|---|---|---|---|")
    cells = " | ".join(f"{m:.3f} ± {h:.3f}" for m, h in table.values())
    print(f"| EMA, seeds {a.seeds} | {cells} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"preset": a.preset, "digit": a.digit, "steps": a.steps, "seeds": a.seeds, "params": params,
                       "config": resolved, "setup": setup_kw, "teacher": teacher, "runs": runs, "final_ema": final,
                       "final_ema_ci95": table}, f, indent=1)


if __name__ == "__main__":
    main()
