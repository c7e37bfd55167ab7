"""Validate the forget tests (docs/forgetting.md): the pretrained model must look "not forgotten",
the retrained model "forgotten", on every test.

For each setting (family, preset, ratio) it runs :func:`unlearn_gym.eval.forgetting.forget_tests`
on the shipped pretrained model (the retrained model is the reference of every test, and its own
membership AUC and relearning curve come out of the same call), with relearning averaged over
``--relearn-seeds`` fine-tuning seeds, and optionally on unlearned checkpoints
(``--unlearned LABEL=PATH``, ratio read from the checkpoint). Writes one JSON per row and a
markdown table to ``--out``.

    OMP_NUM_THREADS=1 python benchmarks/forgetting_validation.py --out docs/forgetting
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from unlearn_gym.eval.forgetting import checkpoint_ratio, forget_tests
from unlearn_gym.pretrained import load_model_file, load_pretrained


def row(label: str, res: dict) -> str:
    m, rel, d = res["membership"], res["relearning"], res["distance"]["difference"]
    mm, mr = m["model"], m["retrained"]

    def ci(x: float, lo: float, hi: float, f: str = ".3f") -> str:
        return f"{x:{f}} [{lo:{f}}, {hi:{f}}]"

    def steps(s: float | None) -> str:
        return f">{rel['model']['steps'][-1]}" if s is None else f"{s:.1f}"

    t = d["trouser_rate"]
    return (f"| {label} | {ci(mm['auc_mean'], *mm['ci_mean'])} | {ci(mr['auc_mean'], *mr['ci_mean'])} |"
            f" {mm['best']}: {mm['auc_best']:.3f} / {mr['best']}: {mr['auc_best']:.3f} |"
            f" {ci(m['calibrated']['auc'], m['calibrated']['low'], m['calibrated']['high'])} |"
            f" {ci(m['forget_loss_ratio']['ratio'], m['forget_loss_ratio']['low'], m['forget_loss_ratio']['high'])} |"
            f" {rel['f0']:.3f} | {steps(rel['model']['steps_to_half_f0'])} |"
            f" {steps(rel['retrained']['steps_to_half_f0'])} |"
            f" {rel['model']['mean_rate']:.3f} / {rel['retrained']['mean_rate']:.3f} |"
            f" {ci(t['value'], t['low'], t['high'], '+.3f')} | {d['retain_fid']:+.2f} | {d['max_label_accuracy']:.3f} |"
            f" {res['seconds']:.0f} |")


HEADER = ("| model | MIA AUC (mean) | retrained MIA AUC | best timestep AUC (model / retrained) |"
          " calibrated AUC (0.5 = retrained) | forget loss ratio (1 = retrained) | F0 | steps to F0/2 |"
          " retrained steps to F0/2 | mean relearn rate (model / retrained) |"
          " Δ trouser rate | Δ retain FID | max Δ label acc. | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/forgetting")
    ap.add_argument("--settings", nargs="*", default=["ddpm:micro:0.1", "ddpm:micro:0.5", "cvae:micro:0.1",
                                                      "cvae:micro:0.5"])
    ap.add_argument("--unlearned", nargs="*", default=[], help="LABEL=PATH of unlearned checkpoints")
    ap.add_argument("--relearn-seeds", type=int, default=3)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    refs: dict[tuple, dict] = {}
    relearn = {"seeds": tuple(range(args.relearn_seeds))}
    jobs = []
    for s in args.settings:
        fam, preset, ratio = s.split(":")
        jobs.append((f"pretrained {fam} {preset} r{ratio}", load_pretrained(preset, ratio=float(ratio), model=fam),
                     preset, float(ratio), fam))
    for spec in args.unlearned:
        label, path = spec.split("=", 1)
        model = load_model_file(path)
        from unlearn_gym.pretrained import model_family

        jobs.append((label, model, read_preset(path), checkpoint_ratio(path), model_family(model)))
    for label, model, preset, ratio, fam in jobs:
        t0 = time.perf_counter()
        key = (fam, preset, ratio)
        res = forget_tests(model, preset, ratio=ratio, relearn_kw=relearn, reference_curve=refs.get(key))
        refs.setdefault(key, res["relearning"]["retrained"])
        name = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
        (out / f"{name}.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
        lines.append(row(label, res))
        print(lines[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
    (out / "validation.md").write_text("\n".join(lines) + "\n")


def read_preset(path: str) -> str:
    from unlearn_gym.checkpoints import load_checkpoint
    from unlearn_gym.pretrained import MODEL_KINDS

    return load_checkpoint(path, ("cvae", *MODEL_KINDS))["preset"]


if __name__ == "__main__":
    main()
