"""Every script in examples/ runs as written, with the short budget CI uses (UNLEARN_GYM_EXAMPLE_STEPS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: script -> (short budget, a line its output must contain)
CASES = {
    "quickstart.py": ("10", "SISS updates"),
    "random_policy_vec.py": ("", "λ ="),
    "train_ppo.py": ("64", "outcome score"),
    "train_sac.py": ("64", "outcome score"),
    "custom_agent.py": ("60", "deterministic policy from θ_0"),
    "vector_envs.py": ("8", "PPO on SubprocVecEnv"),
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    pytest.importorskip("stable_baselines3")
    budget, expected = CASES[script]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UNLEARN_GYM_EXAMPLE_STEPS": budget}
    r = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert expected in r.stdout, r.stdout[-2000:]
