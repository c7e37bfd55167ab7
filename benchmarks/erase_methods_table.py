"""Class erasure (``erase-<digit>``) by the SFD family, SISS and the hybrid, evaluated alike: a markdown table.

Each row is ``unlearn_gym.methods.run(...)`` followed by the evaluation suite (``evaluate``, DDIM
from fixed noise; SFD's one-step generator is sampled in one pass from the same noise) and
:func:`~unlearn_gym.methods.outputs.erase_summary`: the erased digit's accuracy (target < 0.1) and
the other digits' mean and minimum accuracy (target >= 0.85). The first rows evaluate the
pretrained model by DDIM and as a one-step generator (SFD's starting point).

    OMP_NUM_THREADS=1 python benchmarks/erase_methods_table.py --preset micro --digit 6 --steps 200 --sfd-steps 300
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from torch import nn

from unlearn_gym.diffusion.one_step import OneStepGenerator
from unlearn_gym.eval.evaluate import evaluate
from unlearn_gym.methods import run
from unlearn_gym.methods.outputs import erase_summary
from unlearn_gym.methods.sfd import resolve_config
from unlearn_gym.pretrained import load_pretrained

#: (row label, method, parameters); SFD rows run --sfd-steps, the others --steps
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("sfd (the preset's configuration, EMA output)", "sfd", {}),
    ("sfd (reference configuration, raw generator)", "sfd", {"config": "reference", "output": "generator"}),
    ("sfd (reference configuration, EMA 0.9999)", "sfd", {"config": "reference"}),
    ("sfd-align (default c_o: next digit, α 0.1)", "sfd-align", {}),
    ("sfd-align-adaptive (τ 1, α 0.1)", "sfd-align-adaptive", {}),
    ("hybrid (SISS ratio ρ 0.5 + β 1 distill + α 0.1 align)", "hybrid", {}),
    ("siss (ratio ρ 0.5), for reference", "siss", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="micro")
    ap.add_argument("--digit", type=int, default=6)
    ap.add_argument("--steps", type=int, default=200, help="steps of the DDPM methods")
    ap.add_argument("--sfd-steps", type=int, default=None,
                    help="steps of the one-step SFD rows (default: each row's configuration's, sfd.CONFIGS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=50, help="evaluation samples per label (all ten)")
    ap.add_argument("--eval-steps", type=int, default=50, help="DDIM steps of the evaluation")
    ap.add_argument("--only", nargs="*", help="run only rows whose method is listed")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="override a parameter of every row of METHOD, e.g. sfd:lr=1e-4")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args()
    from unlearn_gym.methods import parse_value

    overrides: dict[str, dict[str, Any]] = {}
    for item in a.set:
        method, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        overrides.setdefault(method, {})[key] = parse_value(value)
    task = f"erase-{a.digit}"
    pretrained = load_pretrained(a.preset)
    kw = {"samples_per_label": a.samples, "forget_samples": a.samples, "steps": a.eval_steps, "seed": 0,
          "progress": False, "keep_samples": False}
    rows = []

    def add(label: str, model: nn.Module, steps: int, seconds: float, extra: str = "") -> None:
        report = evaluate(model, None, a.preset, **kw)
        e = erase_summary(report.per_class, a.digit)
        junk = report.per_class[a.digit]["junk"]
        rows.append({"row": label, "steps": steps, "seconds": round(seconds, 1), **e, "erased_junk": junk,
                     "note": extra})
        print(f"| {label} | {steps} | {seconds:.1f} | {e['erased_accuracy']:.3f} | {junk:.3f}"
              f" | {e['other_digit_accuracy']:.3f} | {e['min_other_digit_accuracy']:.3f} |{extra}", flush=True)

    print(f"{a.preset}, task {task}, seed {a.seed}; evaluation: {a.samples} samples per label, DDIM-{a.eval_steps}"
          " (one pass for one-step generators), fixed noise (seed 0)\n")
    print("| method | steps | update time (s) | erased acc. | erased junk | other digits acc. | min other acc. |")
    print("|---|---|---|---|---|---|---|")
    if not a.only:
        add("pretrained (DDIM)", pretrained, 0, 0.0)
        add("pretrained as a one-step generator (t* 440)", OneStepGenerator(pretrained), 0, 0.0)
    for label, name, params in ROWS:
        if a.only and name not in a.only:
            continue
        params = {**params, **overrides.get(name, {})}
        steps = a.steps
        if name == "sfd":
            steps = a.sfd_steps or int(resolve_config(a.preset, params)["steps"])
        result = run(name, preset=a.preset, task=task, steps=steps, seed=a.seed, **params)
        note = " diverged" if result.diverged else ""
        if name in overrides:
            note += f" ({', '.join(f'{k}={v}' for k, v in overrides[name].items())})"
        add(label, result.model, len(result.log), result.seconds, note)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
