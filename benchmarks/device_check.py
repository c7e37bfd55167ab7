"""The GPU check: does ``device="cuda"`` work end to end, and what does it buy? (one short script)

Written for a session that is lent a GPU machine for a few minutes; everything else in the project
is built and tested on CPUs. It runs, in order, each part timed and recorded even if a later one fails:

1. the CUDA tests of ``tests/test_device.py`` (skipped on a machine without CUDA);
2. env steps/s on the CPU and on the GPU, measured alternately in one run (``micro``, ``tiny``), and
   the largest difference of the observations of one seeded episode on both devices;
3. pretraining steps/s of the ``mnist28`` DDPM on the GPU, and the projected time of its preset
   schedule (what shipping an ``mnist28`` model costs);
4. a one-seed, two-method ``unlearn-gym benchmark --device cuda`` on ``tiny``;
5. the native vector env on the GPU (``benchmarks/vector_speed.py --device cuda``: batched and loop
   against ``SyncVectorEnv``, micro batch 8 and the VAE, N = 16 and 64) and the outcome score of 16
   copies as one computation against one by one (``OutcomeScorer.score_many``; on the CPU it loses).

    python benchmarks/device_check.py --out "$OUT/device_check.json"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _env_rate(env_id: str, device: str, steps: int) -> tuple[float, np.ndarray]:
    import gymnasium as gym

    env = gym.make(env_id, device=device, outcome=False)
    obs, _ = env.reset(seed=0)
    trace = [obs]
    for _ in range(3):  # warm-up (CUDA kernels, allocator)
        env.step(np.zeros(env.action_space.shape, np.float32))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(env.action_space.shape, np.float32))
    dt = time.perf_counter() - t0
    obs, _ = env.reset(seed=1)
    trace = [obs]
    for a in (-1.0, 0.0, 1.0, 0.5):
        obs, *_ = env.step(np.full(env.action_space.shape, a, np.float32))
        trace.append(obs)
    env.close()
    return steps / dt, np.stack(trace)


def env_speed(steps: int) -> dict[str, Any]:
    import unlearn_gym  # noqa: F401

    out = {}
    for env_id in ("unlearn_gym:SISSUnlearnMicro-v0", "unlearn_gym:SISSUnlearn-v0"):
        cpu_rate, cpu_obs = _env_rate(env_id, "cpu", steps)
        gpu_rate, gpu_obs = _env_rate(env_id, "cuda", steps)
        out[env_id] = {"cpu_steps_per_s": round(cpu_rate, 1), "cuda_steps_per_s": round(gpu_rate, 1),
                       "ratio_cuda_over_cpu": round(gpu_rate / cpu_rate, 2),
                       "max_obs_difference": float(np.abs(gpu_obs - cpu_obs).max())}
    return out


def pretrain_speed(steps: int) -> dict[str, Any]:
    from unlearn_gym.diffusion import pretrain
    from unlearn_gym.presets import get_preset

    p = get_preset("mnist28")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        state = pretrain("mnist28", Path(tmp) / "m.pt", steps=p.pretrain_steps, until=steps, progress=False,
                         device="cuda", save_every=10 ** 9)
        wall = time.perf_counter() - t0
    rate = state["step"] / state["elapsed_s"]
    return {"steps": state["step"], "steps_per_s": round(rate, 2), "wall_s_incl_data": round(wall, 1),
            "loss_ema": round(state["loss"], 4), "projected_full_schedule_min": round(p.pretrain_steps / rate / 60, 1)}


def benchmark_quick(out_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "unlearn_gym.cli", "benchmark", "--quick", "--preset", "tiny", "--device", "cuda",
           "--methods", "baseline", "siss", "adaptive-vi", "--no-pareto", "--workers", "1", "--quiet",
           "--out", str(out_dir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    res = {"rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1),
           "tail": proc.stdout[-1500:] + proc.stderr[-1500:]}
    f = out_dir / "results.json"
    if f.is_file():
        r = json.loads(f.read_text())
        res["cells"] = {c["entry"]: {"status": c["status"], "trouser": (c.get("metrics") or {}).get("forget_score")}
                        for c in r.get("cells", [])}
    return res


def vector_speed() -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vector_speed import main as vs_main

    rows = []
    for model, batch in (("micro DDPM", 8), ("VAE", 16)):
        rows += vs_main(["--models", model, "--batch", str(batch), "--n", "16", "64", "--async-max", "0",
                         "--device", "cuda"])["rows"]
    return {"rows": rows}


def batched_scores(copies: int = 16) -> dict[str, Any]:
    import copy

    from unlearn_gym.envs.outcome import OutcomeScorer
    from unlearn_gym.pretrained import load_classifier, load_pretrained

    ref = load_pretrained("micro", device="cuda").eval()
    scorer = OutcomeScorer(ref, load_classifier("micro"), "trousers")
    models = [copy.deepcopy(ref) for _ in range(copies)]
    out = {}
    for _ in range(2):  # the first round warms up the kernels
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loop = [scorer.score(m)["outcome"] for m in models]
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        many = [r["outcome"] for r in scorer.score_many(models)]
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        out = {"copies": copies, "loop_s": round(t1 - t0, 3), "batched_s": round(t2 - t1, 3),
               "speedup": round((t1 - t0) / (t2 - t1), 2), "max_outcome_difference": max(abs(a - b) for a, b in
                                                                                        zip(loop, many))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="device_check.json")
    ap.add_argument("--env-steps", type=int, default=100)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    a = ap.parse_args()
    out_path = Path(a.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

    def part(name: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        try:
            report[name] = {"ok": True, "result": fn()}
        except Exception:  # record and go on: every part is worth having
            report[name] = {"ok": False, "error": traceback.format_exc(limit=6)}
        report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        out_path.write_text(json.dumps(report, indent=2, default=str))
        print(name, json.dumps(report[name], default=str)[:800], flush=True)

    def tests() -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_device.py", "-p",
                               "no:cacheprovider"], capture_output=True, text=True)
        return {"rc": proc.returncode, "tail": proc.stdout[-2500:]}

    part("tests", tests)
    part("env_speed", lambda: env_speed(a.env_steps))
    part("pretrain_mnist28", lambda: pretrain_speed(a.pretrain_steps))
    part("benchmark_quick", lambda: benchmark_quick(out_path.parent / "bench-cuda"))
    part("vector_speed", vector_speed)
    part("batched_scores", batched_scores)


if __name__ == "__main__":
    main()
