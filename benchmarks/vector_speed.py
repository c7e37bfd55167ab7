"""Steps/s of the native vector env against gymnasium's SyncVectorEnv (and AsyncVectorEnv), in one run.

For each model (the ``micro`` DDPM at batch 8, the ``micro`` VAE) and N copies it builds the native
env (``gym.make_vec(id, num_envs=N)``, the ``vector_entry_point``) stepping its copies in a loop
(``batched=False``) and as one ``torch.func`` computation (``batched=True``), and ``SyncVectorEnv`` of N
single envs (``vectorization_mode="sync"``; ``AsyncVectorEnv`` too for N <= ``--async-max``), times
``--steps`` vector steps of each, alternating the contenders over ``--rounds`` rounds (medians, so a
background load hits both alike), and prints env steps/s (N × vector steps / s), the ratios to
sync, the build time and the memory one copy adds (its parameters, their ``.grad`` and AdamW's two
moments, measured on the tensors after a step). Episodes never end while timed (``horizon`` 10^6,
no outcome score, divergence check off), so this is the cost of the updates and the bookkeeping.

    OMP_NUM_THREADS=1 python benchmarks/vector_speed.py                       # N = 1, 4, 16
    OMP_NUM_THREADS=1 python benchmarks/vector_speed.py --n 1 4 --steps 10 --json out.json

``--profile`` instead times where one batched vector step goes (cProfile over ``--steps`` steps, per
part: the ``vmap``'d forward, the two backward passes, AdamW, the draws, the per-copy bookkeeping):

    OMP_NUM_THREADS=1 python benchmarks/vector_speed.py --models VAE --batch 16 --n 64 --steps 20 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import unlearn_gym  # noqa: F401  (registers the ids)
from unlearn_gym.checkpoints import atomic_write_bytes

MODELS = {"micro DDPM": "unlearn_gym:SISSUnlearnMicro-v0", "VAE": "unlearn_gym:SISSUnlearnVAE-v0",
          "tiny DDPM": "unlearn_gym:SISSUnlearn-v0"}
STEADY = {"horizon": 10**6, "outcome": False, "divergence_factor": 1e12}


#: contender -> (vectorization mode, extra kwargs)
CONTENDERS = {"loop": ("vector_entry_point", {"batched": False}), "batched": ("vector_entry_point", {"batched": True}),
              "sync": ("sync", {}), "async": ("async", {})}


def _build(env_id: str, n: int, mode: str, kw: dict) -> tuple[gym.vector.VectorEnv, float]:
    t0 = time.perf_counter()
    vmode, extra = CONTENDERS[mode]
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode=vmode, **kw, **extra)
    env.reset(seed=0)
    return env, time.perf_counter() - t0


def _time(env: gym.vector.VectorEnv, steps: int) -> float:
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(a)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(a)
    return time.perf_counter() - t0


def copy_bytes(env: gym.vector.VectorEnv) -> dict[str, int]:
    """Bytes one copy of the native env owns after a step: parameters, gradients, AdamW moments, buffers."""
    st = env.unwrapped.states[0]
    params = sum(p.numel() * p.element_size() for p in st.model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in st.model.parameters() if p.grad is not None)
    adam = sum(v.numel() * v.element_size() for s in st.optimizer.state.values() for v in s.values()
               if torch.is_tensor(v) and v.dim() > 0)
    buffers = sum(b.numel() * b.element_size() for b in st.model.buffers())
    return {"params": params, "grads": grads, "adam": adam, "buffers": buffers,
            "total": params + grads + adam + buffers}



#: the parts of a batched step: (file, function) whose cumulative time is that part
PARTS = {"forward (vmap)": ("vmap.py", "vmap_impl"),
         "both backward passes (autograd engine)": ("~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"),
         "AdamW (fused)": ("batched.py", "_adamw"),
         "draws: batches (sample_many)": ("batches.py", "sample_many"),
         "draws: noise per copy": ("batched.py", "_random_inputs"),
         "binding optimizer states (StackedRuns.sync)": ("batched.py", "sync"),
         "decide (per copy)": ("dynamics.py", "decide"),
         "finish_step (per copy)": ("dynamics.py", "finish_step"),
         "merging infos": ("vector.py", "_merge_infos")}


def profile_batched(env_id: str, n: int, kw: dict, steps: int) -> dict[str, float]:
    """Milliseconds per vector step of the batched native env, per part (:data:`PARTS`; cProfile).

    ``update: norms, rule, clip, results`` is the rest of the batched update; ``env: the rest`` is
    the rest of the step (the loop over copies, arrays). Profiling adds overhead to Python calls.

    :param env_id: the registered id.
    :param n: copies.
    :param kw: env arguments.
    :param steps: profiled vector steps (after 3 unprofiled ones).
    """
    env, _ = _build(env_id, n, "batched", kw)
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    for _ in range(3):
        env.step(a)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        env.step(a)
    prof.disable()
    wall = (time.perf_counter() - t0) / steps * 1e3
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (calls, primitive calls, tottime, cumtime, callers)

    def cum(file: str, fn: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == fn) / steps * 1e3

    out = {"wall (profiled)": wall, "step": cum("vector.py", "step"),
           "update": cum("batched.py", "batched_siss_update")}
    out.update({name: cum(*where) for name, where in PARTS.items()})
    inside = ("forward (vmap)", "both backward passes (autograd engine)", "AdamW (fused)",
              "draws: batches (sample_many)", "draws: noise per copy", "binding optimizer states (StackedRuns.sync)")
    out["update: norms, rule, clip, results"] = out["update"] - sum(out[k] for k in inside)
    out["env: the rest"] = out["step"] - out["update"] - sum(
        out[k] for k in ("decide (per copy)", "finish_step (per copy)", "merging infos"))
    env.close()
    return out


def _write_json(path: str | None, out: dict) -> None:
    """Write ``out`` to ``path`` (if given) through a temporary file, so no half-written file is left."""
    if path:
        atomic_write_bytes(path, json.dumps(out, indent=1).encode())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[1, 4, 16], help="copies N")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", type=int, default=8, help="mini-batch per copy")
    p.add_argument("--steps", type=int, default=8, help="timed vector steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--async-max", type=int, default=4, help="time AsyncVectorEnv for N up to this (0: never)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--device", default="cpu", help="where every copy's model runs (cpu, cuda)")
    p.add_argument("--profile", action="store_true", help="profile the batched env's steps instead (ms per part)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    if args.profile:
        for name in args.models:
            kw = {**STEADY, "batch_size": args.batch}
            for n in args.n:
                parts = profile_batched(MODELS[name], n, kw, args.steps)
                rows.append({"model": name, "n": n, "batch": args.batch, "ms_per_vector_step": parts})
                print(f"{name} N={n} B={args.batch}: ms per vector step (cProfile)")
                for k, v in parts.items():
                    print(f"  {k:45s} {v:7.1f} ms {100 * v / parts['step']:5.1f} %")
        out = {"rows": rows, "torch_threads": 1, "steps": args.steps, "profile": True}
        _write_json(args.json, out)
        return out
    for name in args.models:
        env_id, kw = MODELS[name], {**STEADY, "batch_size": args.batch}
        if args.device != "cpu":
            kw["device"] = args.device
        for n in args.n:
            modes = ["loop", "batched", "sync"] + (["async"] if n <= args.async_max else [])
            envs, build = {}, {}
            for m in modes:
                envs[m], build[m] = _build(env_id, n, m, kw)
            times: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(args.rounds):
                for m in modes:
                    times[m].append(_time(envs[m], args.steps))
            sps = {m: n * args.steps / statistics.median(t) for m, t in times.items()}
            row = {"model": name, "n": n, "batch": args.batch, "steps_per_s": sps,
                   "ratio_to_sync": {m: sps[m] / sps["sync"] for m in modes},
                   "build_s": build, "copy_bytes": copy_bytes(envs["loop"])}
            rows.append(row)
            for e in envs.values():
                e.close()
            asy = (f"async {sps['async']:7.1f} ({sps['async'] / sps['sync']:.2f}x)" if "async" in sps else "")
            print(f"{name:10s} N={n:3d} B={args.batch}: native loop {sps['loop']:7.1f} steps/s"
                  f" ({sps['loop'] / sps['sync']:.2f}x sync), batched {sps['batched']:7.1f}"
                  f" ({sps['batched'] / sps['sync']:.2f}x sync, {sps['batched'] / sps['loop']:.2f}x loop),"
                  f" sync {sps['sync']:7.1f} {asy}; build loop {build['loop']:.1f} s, sync {build['sync']:.1f} s;"
                  f" one copy {row['copy_bytes']['total'] / 2**20:.2f} MiB", flush=True)
    out = {"rows": rows, "torch_threads": 1, "steps": args.steps, "rounds": args.rounds, "device": args.device}
    _write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
