"""Validate the forget tests (docs/forgetting.md): the pretrained model must look "not forgotten",
the retrained model "forgotten", on every test.

For each setting (family, preset, ratio[, task]) it runs :func:`unlearn_gym.eval.forgetting.forget_tests`
on the shipped pretrained model (the retrained model is the reference of every test, and its own
membership AUC and relearning curve come out of the same call), with relearning averaged over
``--relearn-seeds`` fine-tuning seeds, and optionally on unlearned checkpoints
(``--unlearned LABEL=PATH``, task and ratio read from the checkpoint). Writes one JSON per row and a
markdown table (``--table``, default ``validation.md``) to ``--out``. A setting with a task
(``ddpm:micro:0.1:erase-7``) tests against the reference retrained without that digit.

    OMP_NUM_THREADS=1 python benchmarks/forgetting_validation.py --out docs/forgetting
    OMP_NUM_THREADS=1 python benchmarks/forgetting_validation.py --settings ddpm:micro:0.1:erase-7 \
        ddpm:tiny:0.1:erase-7 --table erase7-validation.md --summary erase7-validation.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from unlearn_gym.eval.forgetting import checkpoint_task_ratio, forget_tests
from unlearn_gym.pretrained import load_model_file, load_pretrained


def row(label: str, res: dict) -> str:
    m, rel, d = res["membership"], res["relearning"], res["distance"]["difference"]
    mm, mr = m["model"], m["retrained"]

    def ci(x: float, lo: float, hi: float, f: str = ".3f") -> str:
        return f"{x:{f}} [{lo:{f}}, {hi:{f}}]"

    def steps(s: float | None) -> str:
        return f">{rel['model']['steps'][-1]}" if s is None else f"{s:.1f}"

    t = d.get("forget_rate", d["trouser_rate"])
    kept = ("—" if d.get("kept_accuracy") is None
            else f"{d['kept_accuracy']:+.3f} ({d['max_kept_label_accuracy']:.3f})")
    return (f"| {label} | {ci(mm['auc_mean'], *mm['ci_mean'])} | {ci(mr['auc_mean'], *mr['ci_mean'])} |"
            f" {mm['best']}: {mm['auc_best']:.3f} / {mr['best']}: {mr['auc_best']:.3f} |"
            f" {ci(m['calibrated']['auc'], m['calibrated']['low'], m['calibrated']['high'])} |"
            f" {ci(m['forget_loss_ratio']['ratio'], m['forget_loss_ratio']['low'], m['forget_loss_ratio']['high'])} |"
            f" {rel['f0']:.3f} | {steps(rel['model']['steps_to_half_f0'])} |"
            f" {steps(rel['retrained']['steps_to_half_f0'])} |"
            f" {rel['model']['mean_rate']:.3f} / {rel['retrained']['mean_rate']:.3f} |"
            f" {ci(t['value'], t['low'], t['high'], '+.3f')} | {d['retain_fid']:+.2f} | {d['max_label_accuracy']:.3f} |"
            f" {kept} | {res['seconds']:.0f} |")


HEADER = ("| model | MIA AUC (mean) | retrained MIA AUC | best timestep AUC (model / retrained) |"
          " calibrated AUC (0.5 = retrained) | forget loss ratio (1 = retrained) | F0 | steps to F0/2 |"
          " retrained steps to F0/2 | mean relearn rate (model / retrained) |"
          " Δ forget rate (trouser / erased digit) | Δ retain FID | max Δ label acc. |"
          " Δ acc. of the labels ≠ forget label (max) | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/forgetting")
    ap.add_argument("--settings", nargs="*", default=["ddpm:micro:0.1", "ddpm:micro:0.5", "cvae:micro:0.1",
                                                      "cvae:micro:0.5"])
    ap.add_argument("--unlearned", nargs="*", default=[], help="LABEL=PATH of unlearned checkpoints")
    ap.add_argument("--relearn-seeds", type=int, default=3)
    ap.add_argument("--table", default="validation.md", help="markdown table file name in --out")
    ap.add_argument("--summary", help="also write every row's result into this one JSON file in --out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    refs: dict[tuple, dict] = {}
    relearn = {"seeds": tuple(range(args.relearn_seeds))}
    jobs = []
    for s in args.settings:
        fam, preset, ratio, *rest = s.split(":")
        task = rest[0] if rest else "trousers"
        label = f"pretrained {fam} {preset} r{ratio}" + ("" if task == "trousers" else f" {task}")
        jobs.append((label, load_pretrained(preset, ratio=float(ratio), model=fam), preset, task, float(ratio), fam))
    for spec in args.unlearned:
        label, path = spec.split("=", 1)
        model = load_model_file(path)
        from unlearn_gym.pretrained import model_family

        jobs.append((label, model, read_preset(path), *checkpoint_task_ratio(path), model_family(model)))
    summary = {}
    for label, model, preset, task, ratio, fam in jobs:
        t0 = time.perf_counter()
        key = (fam, preset, task, ratio)
        res = forget_tests(model, preset, task=task, ratio=ratio, relearn_kw=relearn, reference_curve=refs.get(key))
        refs.setdefault(key, res["relearning"]["retrained"])
        summary[label] = res
        if not args.summary:
            name = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
            (out / f"{name}.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
        else:
            (out / args.summary).write_text(json.dumps(summary, indent=2, default=float) + "\n")
        lines.append(row(label, res))
        print(lines[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
        (out / args.table).write_text("\n".join(lines) + "\n")


def read_preset(path: str) -> str:
    from unlearn_gym.checkpoints import load_checkpoint
    from unlearn_gym.pretrained import MODEL_KINDS

    return load_checkpoint(path, ("cvae", *MODEL_KINDS))["preset"]


if __name__ == "__main__":
    main()
