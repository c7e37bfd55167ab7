"""Is the outcome score a good measure? Its noise, and agreement with a long DDIM-50 evaluation.

For one instance, runs every policy of ``benchmarks/headroom.py`` for a few seeds and keeps each
final model. For each model it computes the env's outcome score (default config: few DDIM steps,
fixed noise) and the same score on ``--noise-seeds`` other fixed noises (their standard deviation is
the score's sampling noise for a fixed model, to compare with the stated binomial standard error),
and a long reference evaluation (DDIM-50, ``--ref-forget`` label-1 samples). It reports the
Spearman rank correlation between the short score's forget rate and the reference's over all
models: does the cheap score rank models like the expensive one?

    OMP_NUM_THREADS=1 python benchmarks/outcome_validity.py --instance micro-heavy-scale-b8-h30 --seeds 3
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace

import gymnasium as gym
import numpy as np
from headroom import policies_for

import unlearn_gym  # noqa: F401
from unlearn_gym.envs.outcome import OutcomeConfig, OutcomeScorer
from unlearn_gym.policies import rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instance", default="micro-heavy-scale-b8-h30")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noise-seeds", type=int, default=5)
    ap.add_argument("--ref-forget", type=int, default=1000)
    ap.add_argument("--ref-steps", type=int, default=50)
    a = ap.parse_args()
    from scipy.stats import spearmanr

    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", instance=a.instance).unwrapped
    theta0 = copy.deepcopy(env.model).eval()
    base = env.scorer.config
    task = env.config["task"]
    others = [OutcomeScorer(theta0, env.scorer.classifier, task, replace(base, noise_seed=base.noise_seed + k))
              for k in range(1, a.noise_seeds + 1)]
    ref = OutcomeScorer(theta0, env.scorer.classifier, env.config["task"],
                        OutcomeConfig(n_forget=a.ref_forget, n_per_retain=50, steps=a.ref_steps))
    rows, t0 = [], time.perf_counter()
    for name, pol in policies_for(env.config["action"]).items():
        for seed in range(a.seeds):
            r = rollout(env, pol, seed=seed)
            out = r["info"]["outcome"]
            alt = [s.score(env.model) for s in others]
            long = ref.score(env.model)
            rows.append({"policy": name, "seed": seed, "outcome": out["outcome"], "forget": out["forget"],
                         "outcome_se": out["outcome_se"], "forget_se": out["forget_se"],
                         "outcome_noise_sd": float(np.std([x["outcome"] for x in alt], ddof=1)),
                         "forget_noise_sd": float(np.std([x["forget"] for x in alt], ddof=1)),
                         "ref_forget": long["forget"], "ref_outcome": long["outcome"]})
    rho_f = spearmanr([r["forget"] for r in rows], [r["ref_forget"] for r in rows]).statistic
    rho_o = spearmanr([r["outcome"] for r in rows], [r["ref_outcome"] for r in rows]).statistic
    summary = {
        "instance": a.instance, "models": len(rows), "score_config": base.__dict__,
        "reference_config": {"n_forget": a.ref_forget, "steps": a.ref_steps, "n_per_retain": 50},
        "spearman_forget_short_vs_ddim50": round(float(rho_f), 3),
        "spearman_outcome_short_vs_ddim50": round(float(rho_o), 3),
        "median_forget_se_binomial": round(float(np.median([r["forget_se"] for r in rows])), 4),
        "median_forget_sd_over_noise_seeds": round(float(np.median([r["forget_noise_sd"] for r in rows])), 4),
        "median_outcome_se_stated": round(float(np.median([r["outcome_se"] for r in rows])), 4),
        "median_outcome_sd_over_noise_seeds": round(float(np.median([r["outcome_noise_sd"] for r in rows])), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
