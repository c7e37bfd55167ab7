"""Speed of SISSUnlearnEnv relative to a bare SISS update (a benchmark, not a test).

For each preset it prints: env steps/s; env step / bare SISS update (one forward, two backward
passes and the optimizer step on the same model, sampler and batch size; goal <= 1.10); episodic
reset / step (goal <= 0.2); the cost ratios of ``state="exact"`` and ``reward="probe"``; the cost
of the episode-end outcome score relative to a default-length episode (goal <= 0.15 on ``tiny``). Timings
alternate between the contenders over several rounds and report medians, so a background load
affects both sides alike.

It also times ``SISSUnlearnVAE-v0`` (the class-conditional VAE, ``micro``) against the ``micro``
DDPM env, alternating the two in one run, and reports the VAE env's steps/s and the ratio of the
two (goal >= 10). Both are timed per step, without the episode-end outcome score (reported
separately as a share of a default episode): the VAE env is reset every 50 steps (its default
horizon; hundreds of consecutive updates without a reset reach the env's divergence guard), the
DDPM env runs one long episode as above.

    OMP_NUM_THREADS=1 python benchmarks/env_speed.py                 # micro, (if shipped) tiny, VAE
    OMP_NUM_THREADS=1 python benchmarks/env_speed.py --presets micro --rounds 5 --steps 40
    OMP_NUM_THREADS=1 python benchmarks/env_speed.py --presets --vae-steps 300   # only the VAE vs micro DDPM
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import unlearn_gym  # noqa: F401  (registers the ids)
from unlearn_gym.objectives import siss_step
from unlearn_gym.presets import get_preset
from unlearn_gym.pretrained import asset_path


def _make(preset: str, **kw):
    return gym.make("unlearn_gym:SISSUnlearn-v0", preset=preset, horizon=10**9, **kw).unwrapped


def _time_env(env, n: int, reset_every: int | None = None) -> float:
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        env.step(action)
        if reset_every is not None and (i + 1) % reset_every == 0:
            env.reset()
    return (time.perf_counter() - t0) / n


def _time_bare(env, n: int) -> float:
    """The same SISS update the env makes, called directly (no env bookkeeping)."""
    model = copy.deepcopy(env.model)
    opt = torch.optim.AdamW(model.parameters(), lr=env.config["lr"], weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    c = env.config
    t0 = time.perf_counter()
    for _ in range(n):
        siss_step(model, opt, env.schedule, env.sampler.sample(gen), 0.5, rule=c["rule"], scale=c["scale"],
                  generator=gen, max_grad_norm=c["max_grad_norm"])
    return (time.perf_counter() - t0) / n


def _time_reset(env, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        env.reset()
    return (time.perf_counter() - t0) / n


def _time_score(env) -> float:
    t0 = time.perf_counter()
    env.score()
    return time.perf_counter() - t0


def bench(preset: str, rounds: int, steps: int) -> dict[str, float]:
    envs = {"update": _make(preset), "exact": _make(preset, state="exact"), "probe": _make(preset, reward="probe")}
    for e in envs.values():
        e.reset(seed=0)
        _time_env(e, 3)  # warm-up
    base = envs["update"]
    _time_bare(base, 3)
    rows: dict[str, list[float]] = {k: [] for k in ("env", "bare", "reset", "exact", "probe", "score")}
    for _ in range(rounds):
        rows["env"].append(_time_env(base, steps))
        rows["bare"].append(_time_bare(base, steps))
        rows["reset"].append(_time_reset(base, steps))
        rows["exact"].append(_time_env(envs["exact"], steps))
        rows["probe"].append(_time_env(envs["probe"], steps))
        rows["score"].append(_time_score(base))
    env_s = statistics.median(rows["env"])
    ratio = statistics.median(e / b for e, b in zip(rows["env"], rows["bare"]))
    return {
        "preset": preset,
        "batch": base.config["batch_size"],
        "env_step_ms": round(1e3 * env_s, 2),
        "env_steps_per_s": round(1.0 / env_s, 1),
        "bare_update_ms": round(1e3 * statistics.median(rows["bare"]), 2),
        "env_over_bare": round(ratio, 3),
        "reset_ms": round(1e3 * statistics.median(rows["reset"]), 3),
        "reset_over_step": round(statistics.median(rows["reset"]) / env_s, 4),
        "exact_over_update": round(statistics.median(x / e for x, e in zip(rows["exact"], rows["env"])), 3),
        "probe_over_siss": round(statistics.median(p / e for p, e in zip(rows["probe"], rows["env"])), 3),
        "outcome_score_s": round(statistics.median(rows["score"]), 3),
        "outcome_samples": base.scorer.n_samples,
        "outcome_over_episode": round(statistics.median(
            sc / (e * get_preset(preset).horizon) for sc, e in zip(rows["score"], rows["env"])), 3),
    }


def bench_vae(rounds: int, steps: int, ddpm_steps: int) -> dict[str, float]:
    """Steps/s of ``SISSUnlearnVAE-v0`` and of the ``micro`` DDPM env (episodic, defaults), alternated."""
    vae = gym.make("unlearn_gym:SISSUnlearnVAE-v0", horizon=10**9).unwrapped
    ddpm = gym.make("unlearn_gym:SISSUnlearnMicro-v0", horizon=10**9).unwrapped
    horizon = gym.spec("SISSUnlearnVAE-v0").kwargs.get("horizon") or get_preset("micro").horizon
    for e in (vae, ddpm):
        e.reset(seed=0)
    _time_env(vae, 20, reset_every=horizon)  # warm-up
    _time_env(ddpm, 3)
    t_vae, t_ddpm, t_score = [], [], []
    for _ in range(rounds):
        t_vae.append(_time_env(vae, steps, reset_every=horizon))
        t_ddpm.append(_time_env(ddpm, ddpm_steps))
        t_score.append(_time_score(vae))
    vae_s = statistics.median(t_vae)
    return {
        "vae_env_step_ms": round(1e3 * vae_s, 3),
        "vae_env_steps_per_s": round(1.0 / vae_s, 1),
        "micro_ddpm_env_steps_per_s": round(1.0 / statistics.median(t_ddpm), 1),
        "vae_over_micro_ddpm": round(statistics.median(d / v for v, d in zip(t_vae, t_ddpm)), 2),
        "vae_outcome_score_s": round(statistics.median(t_score), 4),
        "vae_outcome_over_episode": round(statistics.median(t_score) / (vae_s * horizon), 3),
        "vae_batch": vae.config["batch_size"], "vae_horizon": horizon, "rounds": rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="*", default=["micro", "tiny"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="timed calls per contender and round")
    ap.add_argument("--vae-steps", type=int, default=300, help="timed VAE env steps per round (0: skip the VAE)")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for preset in a.presets:
        if not asset_path("ddpm", preset).is_file():
            print(f"{preset}: no shipped DDPM, skipped")
            continue
        r = bench(preset, a.rounds, a.steps)
        print(json.dumps(r))
        print(f"  {preset}: {r['env_steps_per_s']} env steps/s; env/bare {r['env_over_bare']} (goal <= 1.10); "
              f"reset/step {r['reset_over_step']} (goal <= 0.2); exact/update {r['exact_over_update']}; "
              f"probe/siss {r['probe_over_siss']}; outcome score {r['outcome_score_s']} s = "
              f"{r['outcome_over_episode']} of a {get_preset(preset).horizon}-step episode (goal <= 0.15)")
    if a.vae_steps > 0 and asset_path("cvae", "micro").is_file():
        v = bench_vae(a.rounds, a.vae_steps, a.steps)
        print(json.dumps(v))
        print(f"  VAE (SISSUnlearnVAE-v0): {v['vae_env_steps_per_s']} env steps/s; micro DDPM env "
              f"{v['micro_ddpm_env_steps_per_s']} steps/s; ratio {v['vae_over_micro_ddpm']} (goal >= 10); outcome "
              f"score {v['vae_outcome_score_s']} s = {v['vae_outcome_over_episode']} of a "
              f"{v['vae_horizon']}-step episode")


if __name__ == "__main__":
    main()
