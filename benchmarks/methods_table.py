"""Every built-in method (plus variants) on one preset and task, evaluated alike: a markdown table.

Each row is ``unlearn_gym.methods.run(...)`` followed by the evaluation suite (``evaluate`` with the
pretrained model as the paired reference, DDIM, fixed noise); the first row evaluates the pretrained
model itself. Columns: wall time of the updates, confident-trouser / one / junk rates of label 1,
retain FID and retain (other-digit) accuracy, and the lowest per-digit accuracy.

    OMP_NUM_THREADS=1 python benchmarks/methods_table.py --preset micro --steps 50
    OMP_NUM_THREADS=1 python benchmarks/methods_table.py --preset micro --steps 50 --model cvae   # the VAE rows

``--model cvae`` unlearns the shipped VAE instead (prior samples are evaluated; the rows are the
methods that serve the VAE).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from unlearn_gym.eval.evaluate import evaluate
from unlearn_gym.methods import get_method, run
from unlearn_gym.pretrained import load_pretrained

#: (row label, method, parameters)
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("siss (preset rule: ratio ρ 0.5)", "siss", {}),
    ("siss, rescale c 5 (reference units)", "siss", {"rule": "rescale", "scale": 5.0}),
    ("siss, rescale c 5 (pixel-mean units, before the fix)", "siss", {"rule": "rescale", "scale": 5.0,
                                                                      "grad_units": "mean"}),
    ("siss-no-is (ratio ρ 0.5)", "siss-no-is", {}),
    ("naive-deletion", "naive-deletion", {}),
    ("neggrad (s 0)", "neggrad", {}),
    ("erasediff (η 1)", "erasediff", {}),
    ("adaptive-vi (ratio ρ 0.5, β_KL 0.01)", "adaptive-vi", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--task", default="trousers")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=50, help="evaluation samples per retain label")
    ap.add_argument("--eval-steps", type=int, default=50, help="DDIM steps of the evaluation")
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--model", choices=("ddpm", "cvae"), default="ddpm", help="model family to unlearn")
    a = ap.parse_args()

    pretrained = load_pretrained(a.preset, model=a.model)
    kw = {"samples_per_label": a.samples, "steps": a.eval_steps, "seed": 0, "progress": False,
          "keep_samples": False}
    rows = []

    def add(label: str, model: Any, seconds: float, extra: str = "") -> None:
        s = evaluate(model, pretrained, a.preset, **kw).summary
        rows.append({"row": label, "seconds": round(seconds, 1), **{k: s[k] for k in (
            "trouser_rate", "one_rate", "junk_rate", "retain_fid", "retain_accuracy", "min_retain_accuracy")},
            "note": extra})
        r = rows[-1]
        print(f"| {label} | {r['seconds']} | {r['trouser_rate']:.3f} | {r['one_rate']:.3f} | {r['junk_rate']:.3f}"
              f" | {r['retain_fid']:.2f} | {r['retain_accuracy']:.3f} | {r['min_retain_accuracy']:.3f} |{extra}",
              flush=True)

    print(f"{a.model}, {a.preset}, task {a.task}, {a.steps} steps, seed {a.seed}; evaluation: {a.samples} samples per"
          f" retain label, {6 * a.samples} of label 1, DDIM-{a.eval_steps}\n")
    print("| method | update time (s) | trouser | one | junk | retain FID | retain acc. | min digit acc. |")
    print("|---|---|---|---|---|---|---|---|")
    add("pretrained", pretrained, 0.0)
    for label, name, params in ROWS:
        if a.model not in get_method(name).models:
            continue
        if a.model == "cvae":
            label = label.replace("ρ 0.5", "ρ 0.5 = the VAE's default")
        result = run(name, preset=a.preset, task=a.task, steps=a.steps, seed=a.seed, model=a.model, **params)
        note = " diverged" if result.diverged else ""
        add(label, result.model, result.seconds, note)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
