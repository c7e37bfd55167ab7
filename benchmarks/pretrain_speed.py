"""Pretraining speed per preset on this machine: seconds per step and the projected full run.

    python benchmarks/pretrain_speed.py [--steps 100] [--presets micro tiny mnist28]

Times ``--steps`` real pretraining steps (the library's own loop, after 10 warm-up steps) and
projects the preset's default pretraining length. Run it on an otherwise idle machine; it prints
the torch thread count it used.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from unlearn_gym.data import build_contaminated_mnist
from unlearn_gym.diffusion import pretrain
from unlearn_gym.presets import get_preset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--presets", nargs="+", default=["micro", "tiny", "mnist28"])
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'preset':8s} {'s/step':>8s} {'default steps':>14s} {'projected':>10s}")
    for name in a.presets:
        p = get_preset(name)
        data = build_contaminated_mnist(name)
        with tempfile.TemporaryDirectory() as d:
            warm = pretrain(name, Path(d) / "w.pt", steps=10, data=data, progress=False)
            del warm
            run = pretrain(name, Path(d) / "b.pt", steps=a.steps, data=data, progress=False)
        per_step = run["elapsed_s"] / a.steps
        total_min = per_step * p.pretrain_steps / 60
        print(f"{name:8s} {per_step:8.3f} {p.pretrain_steps:14d} {total_min:8.1f} min")


if __name__ == "__main__":
    main()
