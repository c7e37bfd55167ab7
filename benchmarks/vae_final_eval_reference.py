"""Which reference does an RL run's final evaluation pair a VAE with? (issue 20, item 6)

Plays the default constant (action (0, 0)) on a ``vae`` instance, saves the final model the way
``unlearn-gym train`` does (``unlearn_gym.rl.evaluation.save_unlearned``, default 50 evaluation samples
per retain digit) and records the reference column of the written ``metrics.json`` next to the
evaluation suite's measures of the pretrained VAE and the pretrained DDPM with the same plan.

    OMP_NUM_THREADS=1 python benchmarks/vae_final_eval_reference.py --json docs/vae/final-eval-reference.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import unlearn_gym  # noqa: F401
from unlearn_gym.eval.evaluate import evaluate
from unlearn_gym.pretrained import load_pretrained
from unlearn_gym.rl.evaluation import run_policy, save_unlearned

KEYS = ("retain_fid", "retain_kid", "retain_accuracy", "min_retain_accuracy", "trouser_rate", "one_rate")


class DefaultConstant:
    """An SB3-like ``predict`` that always returns action (0, 0)."""

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        return np.zeros((1, 2), dtype=np.float32), state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instance", default="vae-micro-scale-b8-h30")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    env = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance=a.instance)
    r = run_policy(DefaultConstant(), env, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        save_unlearned(env, r["rows"], tmp, name="default constant", seed=0)
        m = json.loads((Path(tmp) / "metrics.json").read_text())
    same_plan = {}
    for family in ("cvae", "ddpm"):
        rep = evaluate(load_pretrained("micro", model=family), None, "micro", samples_per_label=50, steps=50,
                       seed=0, progress=False, keep_samples=False)
        same_plan[f"pretrained_{family}"] = {k: rep.summary[k] for k in KEYS}
    out = {"command": f"benchmarks/vae_final_eval_reference.py --instance {a.instance}",
           "outcome": r["outcome"]["outcome"],
           "saved_run_model": {k: m["summary"][k] for k in KEYS},
           "saved_run_reference_column": {k: m["reference_summary"][k] for k in KEYS},
           "same_plan": same_plan}
    Path(a.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
