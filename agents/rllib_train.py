"""Train an RLlib PPO agent that steers SISS unlearning, with N env runners on a Ray cluster.

    python -m agents.rllib_train --env SISSUnlearnMicro-v0 --instance micro-heavy-scale-b8-h30
    python -m agents.rllib_train --num-env-runners 8 --address HEAD:6379 --timesteps 50000
    python -m agents.rllib_train --timesteps 300 --num-env-runners 1 --env-kwargs horizon=10

One readable file (CleanRL style): the settings are the :class:`Args` dataclass (one ``--flag`` per
field), :func:`train` does the rest. The protocol is the episodic one of ``agents/train.py``
(docs/method.md §3, Option 1): PPO (RLlib's new API stack: RLModule, Learner, EnvRunners) trains on
episodic envs, θ_0 restored at every reset, each env runner a separate process (on any node of the
cluster) that steps its own env; then the trained policy's deterministic action (the mean of its
Gaussian, clipped to the action box) makes one final unlearning run from θ_0 on a fresh env in
this process (seed ``--eval-seed``), and that run's model is saved and evaluated exactly as
``agents/train.py`` saves it (:func:`unlearn_gym.rl.evaluation.save_unlearned`).

The PPO defaults are the paper's, as in ``unlearn_gym/rl/hyperparams/ppo.yml``: policy and value MLPs of
two hidden layers of 64 tanh units (separate networks, state-independent log-std like SB3),
gamma 0.99, GAE λ 0.95, clip 0.2, Adam 3e-4, entropy coefficient 0.001, 256 steps per update
(over all env runners) in minibatches of 64 for 10 epochs.

Without ``--address`` a local Ray instance is started with ``--num-cpus`` CPUs (default: one per env
runner plus one for this process). With ``--address HEAD:6379`` the script joins a running cluster
(``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others; every node
needs the same Python environment with unlearn-gym installed). Env runner processes run torch with
one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``).

The run folder (``--out``) holds ``config.json``, ``checkpoint/`` (the RLlib algorithm checkpoint;
the policy alone is ``checkpoint/learner_group/learner/rl_module/default_policy``, loadable with
``RLModule.from_checkpoint``), ``result.json`` (timesteps, train seconds, per-iteration returns,
the final run's return, paper's return, outcome score and λ sequence) and ``final/`` (the unlearned
model ``model.pt`` with its log, plots and the evaluation suite's ``metrics.json``).

Needs ``pip install -e ".[rllib]"`` (ray[rllib] 2.60, which pins gymnasium 1.2.2).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the name the env is registered under for RLlib (the gym id travels in the env config)
RLLIB_ENV_NAME = "unlearn_gym_rllib"


@dataclass
class Args:
    """Settings of one RLlib PPO run (each field is a ``--flag``)."""

    env: str = "SISSUnlearnMicro-v0"
    """Gymnasium id of the unlearning env (the `unlearn_gym:` prefix is optional)."""
    instance: str | None = None
    """A named benchmark instance (e.g. micro-heavy-scale-b8-h30): trained and judged on it."""
    env_kwargs: list[str] = field(default_factory=list)
    """Env constructor argument KEY=VALUE (as --set), repeatable: --env-kwargs horizon=10 --env-kwargs beta=0.2."""
    timesteps: int = 20000
    """Training steps (= DDPM updates) over all env runners; training stops at the first PPO iteration reaching it."""
    num_env_runners: int = 2
    """Env runner processes (each steps one env; 0: sample in this process)."""
    seed: int = 0
    """Seed of the agent and of the env runners (RLlib derives each runner's env seed from it)."""
    out: str | None = None
    """Run folder (default: runs/agents/rllib-ppo-<instance or env>-s<seed>)."""
    address: str | None = None
    """Address of a running Ray cluster (HEAD_IP:6379); without it a local Ray instance is started."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (default: num_env_runners + 1); ignored with --address."""
    eval_seed: int = 0
    """Seed of the final deterministic run from θ_0."""
    train_batch: int = 256
    """Env steps per PPO update, over all env runners (SB3's n_steps x n_envs)."""
    minibatch: int = 64
    """SGD minibatch size."""
    epochs: int = 10
    """SGD passes over each train batch."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip: float = 0.2
    """PPO clip range."""
    ent_coef: float = 0.001
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    grad_clip: float = 0.5
    """Global gradient-norm clip."""
    hidden: int = 64
    """Units of each of the two tanh hidden layers of the policy and the value MLPs."""
    eval_samples: int = 50
    """Evaluation-suite samples per retain label for metrics.json (0: no evaluation suite)."""
    eval_forget_samples: int | None = None
    """Evaluation-suite samples of the forget label (default 6x --eval-samples)."""
    eval_steps: int = 50
    """DDIM steps of the evaluation suite."""
    torch_threads: int = 1
    """Torch threads of this process (the learner and the final run)."""
    verbose: bool = True
    """Print one line per PPO iteration."""


def parse_args(argv: list[str] | None = None) -> Args:
    """:class:`Args` from the command line (one ``--flag`` per field, help = its docstring).

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    from unlearn_gym.rl.train import add_arguments

    parser = argparse.ArgumentParser(prog="python -m agents.rllib_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    ns = add_arguments(parser, Args).parse_args(argv)
    kw = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)}
    return Args(**{k: ([] if v is None and typing.get_origin(typing.get_type_hints(Args)[k]) is list else v)
                   for k, v in kw.items()})


# ---------------------------------------------------------------------------------------------
def make_env(env_config: dict[str, Any]) -> Any:
    """The env creator RLlib calls in every env runner process (``env_config``: ``env_id``, ``env_kwargs``).

    Env runners are separate processes: they import unlearn_gym (which registers the ids) and run
    torch with one thread.
    """
    import gymnasium as gym
    import torch

    import unlearn_gym  # noqa: F401  (registers the env ids)

    torch.set_num_threads(1)
    return gym.make(env_config["env_id"], **dict(env_config.get("env_kwargs") or {}))


class DeterministicRLModule:
    """An RLModule behind SB3's ``predict`` signature, for :func:`unlearn_gym.rl.evaluation.run_policy`.

    The action is the mean of the module's action distribution (``to_deterministic()``), clipped to
    the action box.
    """

    def __init__(self, module: Any, action_space: Any):
        self.module, self.low, self.high = module, action_space.low, action_space.high

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, None]:
        import numpy as np
        import torch

        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(np.asarray(obs, dtype=np.float32))})
            dist = self.module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
            action = (dist.to_deterministic() if deterministic else dist).sample()
        return np.clip(action.cpu().numpy(), self.low, self.high), None


def ppo_config(args: Args, env_kwargs: dict[str, Any]) -> Any:
    """The RLlib ``PPOConfig`` of a run (new API stack).

    :param args: the run's settings.
    :param env_kwargs: the env's constructor arguments.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (
        PPOConfig()
        .environment(RLLIB_ENV_NAME, env_config={"env_id": args.env, "env_kwargs": env_kwargs})
        .framework("torch")
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1,
                     num_cpus_per_env_runner=1, rollout_fragment_length="auto")
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=args.train_batch, minibatch_size=args.minibatch,
                  num_epochs=args.epochs, lr=args.lr, gamma=args.gamma, lambda_=args.gae_lambda,
                  clip_param=args.clip, entropy_coeff=args.ent_coef, vf_loss_coeff=args.vf_coef,
                  grad_clip=args.grad_clip, grad_clip_by="global_norm", use_kl_loss=False)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[args.hidden, args.hidden],
                                                   fcnet_activation="tanh", vf_share_layers=False,
                                                   free_log_std=True))
        .fault_tolerance(restart_failed_env_runners=False)  # an env error ends the run, not a restart loop
        .debugging(seed=args.seed)
    )


def default_out(args: Args) -> Path:
    """``runs/agents/rllib-ppo-<instance or env>-s<seed>``."""
    from unlearn_gym.rl.config import short_env_id

    return Path("runs/agents") / f"rllib-ppo-{args.instance or short_env_id(args.env)}-s{args.seed}"


def train(args: Args, command: str | None = None) -> dict[str, Any]:
    """Train PPO with RLlib, checkpoint it, make the final run, save and evaluate the unlearned model.

    :param args: the run's settings.
    :param command: the command line (recorded in the outputs).
    :returns: the content of ``result.json``.
    :raises ValueError: bad settings (an unknown env argument is named).
    """
    import gymnasium as gym
    import ray
    import torch
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
    from ray.rllib.core.rl_module.rl_module import RLModule
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN, NUM_ENV_STEPS_SAMPLED_LIFETIME
    from ray.tune.registry import register_env

    import unlearn_gym  # noqa: F401  (registers the env ids)
    from unlearn_gym.checkpoints import versions, write_json
    from unlearn_gym.rl.config import check_env_kwargs, parse_set
    from unlearn_gym.rl.evaluation import run_policy, save_unlearned

    if args.timesteps < 1 or args.num_env_runners < 0 or args.train_batch < 1:
        raise ValueError("--timesteps and --train-batch must be >= 1, --num-env-runners >= 0")
    env_kwargs = dict(parse_set(args.env_kwargs))
    if args.instance:
        env_kwargs["instance"] = args.instance
    if env_kwargs.get("mode", "episodic") != "episodic":
        raise ValueError("the RLlib entry trains on episodic envs only (env_kwargs.mode must be episodic)")
    check_env_kwargs(args.env, env_kwargs)
    torch.set_num_threads(args.torch_threads)

    out = Path(args.out) if args.out else default_out(args)
    out.mkdir(parents=True, exist_ok=True)
    config = ppo_config(args, env_kwargs)
    write_json(out / "config.json", {"algo": "rllib-ppo", "env": args.env, "protocol": "episodic",
                                     "seed": args.seed, "env_kwargs": env_kwargs, "args": dataclasses.asdict(args),
                                     "rllib_config": config.to_dict(), "command": command,
                                     "versions": {**versions(), "ray": ray.__version__}})

    # ---- training on the cluster ----------------------------------------------------------
    runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1"}}
    if args.address:
        ray.init(address=args.address, runtime_env=runtime_env, log_to_driver=args.verbose)
    else:
        ray.init(num_cpus=args.num_cpus or args.num_env_runners + 1, runtime_env=runtime_env,
                 include_dashboard=False, log_to_driver=args.verbose)
    iterations: list[dict[str, Any]] = []
    try:
        register_env(RLLIB_ENV_NAME, make_env)
        algo = config.build_algo()
        t0 = time.perf_counter()
        steps = 0
        while steps < args.timesteps:
            res = algo.train()
            runners = res.get(ENV_RUNNER_RESULTS, {})
            steps = int(runners.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, steps))
            ret = runners.get(EPISODE_RETURN_MEAN)
            iterations.append({"iteration": len(iterations) + 1, "timesteps": steps,
                               "seconds": round(time.perf_counter() - t0, 2),
                               "episode_return_mean": None if ret is None else float(ret)})
            if args.verbose:
                print(f"iteration {len(iterations)}: {steps} steps, {iterations[-1]['seconds']:.1f} s,"
                      f" episode return mean {ret if ret is None else f'{ret:.4f}'}", flush=True)
        train_s = time.perf_counter() - t0
        checkpoint = Path(algo.save_to_path(str((out / "checkpoint").resolve())))
        algo.stop()
    finally:
        ray.shutdown()

    # ---- the final deterministic run from θ_0, in this process ------------------------------
    module = RLModule.from_checkpoint(checkpoint / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER
                                      / COMPONENT_RL_MODULE / DEFAULT_MODULE_ID)
    module.eval()
    env = gym.make(args.env, **env_kwargs)
    policy = DeterministicRLModule(module, env.action_space)
    run = run_policy(policy, env, args.eval_seed)
    name = "rllib-ppo (episodic)"
    saved = save_unlearned(env, run["rows"], out / "final", name=name, seed=args.eval_seed,
                           extra={"agent": "rllib-ppo", "protocol": "episodic", "agent_seed": args.seed,
                                  "run_dir": str(out), "instance": args.instance or "env"},
                           command=command, eval_samples=args.eval_samples,
                           eval_forget_samples=args.eval_forget_samples, eval_steps=args.eval_steps)
    env.close()
    outcome = run["outcome"] or {}
    final = {"seed": args.eval_seed, "outcome": outcome.get("outcome"), "forget": outcome.get("forget"),
             "retain_mean": outcome.get("retain_mean"), "one_rate": outcome.get("one_rate"),
             "return": run["return"], "paper_return": run["paper_return"], "steps": run["steps"],
             "diverged": run["diverged"], "lambdas": run["lambdas"], "scales": run["scales"],
             "outcome_score": run["outcome"], **saved}
    result = {"algo": "rllib-ppo", "env": args.env, "protocol": "episodic", "seed": args.seed,
              "instance": args.instance, "env_kwargs": env_kwargs, "num_env_runners": args.num_env_runners,
              "address": args.address, "timesteps": steps, "train_seconds": round(train_s, 2),
              "steps_per_second": round(steps / train_s, 2), "iterations": iterations,
              "checkpoint": str(checkpoint), "final": final}
    write_json(out / "result.json", result)
    o = f"outcome {final['outcome']:+.3f}" if final["outcome"] is not None else "no outcome score"
    print(f"rllib-ppo trained {steps} steps in {train_s:.1f} s ({steps / train_s:.2f} steps/s,"
          f" {args.num_env_runners} env runners); final run: {o}, paper return {final['paper_return']:.3f},"
          f" {final['steps']} steps\nwrote {out}/ (checkpoint/, result.json, final/)")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; bad settings print ``error: ...`` and return 2.

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        train(args, command=" ".join(["python -m agents.rllib_train", *(shlex.quote(a) for a in argv)]))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
