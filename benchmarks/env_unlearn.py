"""Does a constant-λ episode of the env actually unlearn? (the acceptance check of the env issue)

Runs one episode of ``SISSUnlearn-v0`` (or ``--env``) with a constant action, then samples the
pretrained and the unlearned model from the same initial noise (DDIM) and scores both with the
shipped classifier: the confident-trouser rate of label 1 must at least halve, and the accuracy of
every other digit must stay within 5 points.

    OMP_NUM_THREADS=1 python benchmarks/env_unlearn.py --env SISSUnlearnMicro-v0
    OMP_NUM_THREADS=1 python benchmarks/env_unlearn.py --env SISSUnlearn-v0 --per-label 100
    OMP_NUM_THREADS=1 python benchmarks/env_unlearn.py --env SISSUnlearnVAE-v0 --per-label 500   # VAE: prior samples
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import unlearn_gym  # noqa: F401  (registers the ids)
from unlearn_gym.diffusion import NoiseSchedule, sample_images
from unlearn_gym.eval.rates import label_rates, summarize_rates
from unlearn_gym.pretrained import load_classifier, load_pretrained


def score(model, classifier, n_one: int, per_label: int, steps: int, seed: int) -> tuple[dict, dict]:
    """Summary rates and per-digit accuracy of ``model`` on fixed initial noise (DDIM, or a VAE's prior)."""
    others = torch.tensor([d for d in range(10) if d != 1]).repeat_interleave(per_label)
    labels = torch.cat([torch.ones(n_one, dtype=torch.long), others])
    res = classifier.resolution
    noise = torch.randn(len(labels), 1, res, res, generator=torch.Generator().manual_seed(seed))
    rates = label_rates(classifier, sample_images(model, NoiseSchedule(), labels, noise, steps=steps), labels)
    return summarize_rates(rates), {d: r.accuracy for d, r in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="SISSUnlearn-v0")
    ap.add_argument("--action", type=float, default=0.0, help="constant action (0 = λ 0.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-one", type=int, default=500, help="samples drawn for label 1")
    ap.add_argument("--per-label", type=int, default=100, help="samples per other digit")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--set", nargs="*", default=[], help="env kwargs, key=json-value")
    a = ap.parse_args()
    kwargs = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    env = gym.make(f"unlearn_gym:{a.env}", **kwargs).unwrapped
    preset = env.config["preset"]
    clf = load_classifier(preset)
    env.reset(seed=a.seed)
    t0 = time.perf_counter()
    for _ in range(env.horizon):
        *_, term, _, info = env.step(np.array([a.action] * env.action_space.shape[0], dtype=np.float32))
        if term:
            break
    train_s = time.perf_counter() - t0
    start = load_pretrained(preset, env.config["checkpoint"], ratio=env.config["data_ratio"], model=env.config["model"])
    before, acc0 = score(start, clf, a.n_one, a.per_label, a.steps, 123)
    after, acc1 = score(env.model, clf, a.n_one, a.per_label, a.steps, 123)
    drops = {d: round(acc0[d] - acc1[d], 3) for d in acc0 if d != 1}
    ok = after["trouser_rate"] <= 0.5 * before["trouser_rate"] and max(drops.values()) <= 0.05
    cfg = {k: env.config[k] for k in ("model", "preset", "data_ratio", "horizon", "lr", "rule", "scale", "batch_size")}
    print(json.dumps({
        "env": a.env, "config": cfg, "steps_run": info["step"], "diverged": info["diverged"],
        "unlearn_seconds": round(train_s, 1),
        "pretrained": {k: round(v, 3) for k, v in before.items()},
        "unlearned": {k: round(v, 3) for k, v in after.items()},
        "accuracy_drop_per_digit": drops, "max_drop": max(drops.values()), "pass": ok,
    }, indent=1))


if __name__ == "__main__":
    main()
