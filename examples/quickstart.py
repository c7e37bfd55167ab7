"""Quick start: one unlearning episode with a constant λ, then measure what was forgotten.

    python examples/quickstart.py            # micro preset, ~1 minute on 2 CPU cores
    python examples/quickstart.py --tiny     # the default SISSUnlearn-v0 (16x16)
    UNLEARN_GYM_EXAMPLE_STEPS=10 python examples/quickstart.py   # short budget (CI): 10 updates, fewer samples
"""

from __future__ import annotations

import os
import sys

import gymnasium as gym
import numpy as np

import unlearn_gym
from unlearn_gym.eval.quality import model_quality

env_id = "unlearn_gym:SISSUnlearn-v0" if "--tiny" in sys.argv else "unlearn_gym:SISSUnlearnMicro-v0"
short = int(os.environ.get("UNLEARN_GYM_EXAMPLE_STEPS", 0))  # 0: the env's own horizon
env = gym.make(env_id, **({"horizon": short} if short else {}))
preset = env.unwrapped.config["preset"]
classifier = unlearn_gym.load_classifier(preset)
n_per_label = 20 if short else 100

before = model_quality(env.unwrapped.model, classifier, n_per_label=n_per_label)
obs, info = env.reset(seed=0)
episode_return, done = 0.0, False
while not done:
    action = np.zeros(env.action_space.shape, dtype=np.float32)  # action 0 = λ 0.5, the paper's static SISS
    obs, reward, terminated, truncated, info = env.step(action)
    episode_return += float(reward)
    done = terminated or truncated
after = model_quality(env.unwrapped.model, classifier, n_per_label=n_per_label)

print(f"{env_id}: {info['step']} SISS updates, return {episode_return:.3f}, diverged={info['diverged']}")
for name, q in (("pretrained", before), ("unlearned", after)):
    print(f"  {name:10s} label-1 trouser rate {q['trouser_rate']:.3f}, one rate {q['one_rate']:.3f},"
          f" junk {q['junk_rate']:.3f}; accuracy on other digits {q['other_accuracy']:.3f}")
