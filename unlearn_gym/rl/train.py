"""Train a Stable-Baselines3 / sb3-contrib agent that steers SISS unlearning, in either protocol of the paper.

The training core behind the script ``agents/train.py`` and ``unlearn-gym train-agent``
(:class:`Args`, :func:`add_arguments`, :func:`args_from_namespace`, :func:`train`)::

    python -m agents.train --algo ppo --env SISSUnlearnMicro-v0 --instance micro-heavy-scale-b8-h30
    python -m agents.train --algo sac --env SISSUnlearnMicro-v0 --instances default:train   # judged on default:test
    python -m agents.train --algo ppo --env SISSUnlearnMicro-v0 --instance micro-heavy-scale-b8-h30 --protocol online
    unlearn-gym train-agent --algo tqc --env SISSUnlearnMicro-v0 --timesteps 3000 --set gamma=0.95
    tensorboard --logdir runs/agents

Protocols (docs/method.md §3):

* ``episodic`` (Option 1): the agent trains on episodic envs (θ_0 restored at every reset), then its
  frozen deterministic policy makes one final unlearning run from θ_0 (seed ``--eval-seed``); that
  run's model is saved and evaluated. ``--eval-episodes N`` repeats the deterministic run on seeds
  ``eval_seed .. eval_seed+N-1`` for the outcome score's mean and 95 % CI (the first one is the
  final run). With ``--instances SET:train`` the final runs are made on every instance of
  ``SET:test`` (or ``--eval-instances``).
* ``online`` (Option 2): one long unlearning run on the online env (never reset to θ_0); the agent
  updates every ``n_steps`` steps (PPO: 256) on that window; the model at the end of training is the
  unlearned model.

Hyperparameters come from ``unlearn_gym/rl/hyperparams/<algo>.yml`` (rl-baselines3-zoo format, see
:mod:`unlearn_gym.rl.config`), ``--hyperparams FILE`` and ``--set key=value``. A run folder (``--out``) holds
``config.json`` (everything resolved), ``hyperparams.yml`` (the resolved block, reusable with
``--hyperparams``), ``policy.zip``, ``checkpoints/``, ``tb/`` (tensorboard), ``training.csv`` and
``training.png`` (outcome score and the paper's return of every training episode), ``result.json``
(outcome score, returns and λ sequences of the final runs) and ``final/`` (the unlearned model
``model.pt``, ``log.csv``, ``lambda.png``, ``trajectory.png``, ``losses.png`` and the evaluation
suite's ``metrics.json`` / ``metrics.md`` / ``samples.png``; ``final/<instance>/`` when several
instances are evaluated).

The env's reward is the instance's (``"outcome"`` for the benchmark instances: the outcome score at
the episode's end); the paper's return ``Σ -L_SISS - β Δλ²`` is recomputed from ``info`` and
reported beside it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_gym.rl.config import PROTOCOLS, short_env_id  # stdlib only: no torch or SB3 import


@dataclass
class Args:
    """Settings of one training run (each field is a ``--flag``)."""

    algo: str = "ppo"
    """RL algorithm: ppo, sac, a2c (stable-baselines3), tqc, recurrentppo (sb3-contrib)."""
    env: str = "SISSUnlearnMicro-v0"
    """Gymnasium id of the unlearning env (the `unlearn_gym:` prefix is optional)."""
    instance: str | None = None
    """A named benchmark instance (e.g. micro-heavy-scale-b8-h30): trained and judged on it."""
    instances: str | None = None
    """Instances drawn per training episode: SET:SPLIT (e.g. default:train) or names joined by commas."""
    eval_instances: str | None = None
    """Instances the final runs are made on (default: SET:test for --instances SET:train, else the training ones)."""
    hyperparams: str | None = None
    """YAML file of hyperparameters (default: the shipped unlearn_gym/rl/hyperparams/<algo>.yml)."""
    protocol: str = "episodic"
    """episodic (train on episodes from θ_0, then one final run) or online (one long run, the model at the end)."""
    timesteps: int | None = None
    """Training steps (= DDPM updates), over all envs (default: the file's n_timesteps)."""
    seed: int = 0
    """Seed of the agent and of the training envs (env i gets seed + i)."""
    out: str | None = None
    """Run folder (default: runs/agents/<algo>-<instance or env>-<protocol>-s<seed>)."""
    set: list[str] = field(default_factory=list)
    """Hyperparameter override KEY=VALUE (a literal, [a, b], {k: v} or a word), repeatable: --set gamma=0.95."""
    eval_seed: int = 0
    """Seed of the final run (episodic protocol)."""
    eval_episodes: int = 1
    """Deterministic runs per evaluation instance on seeds eval_seed, eval_seed+1, ... (the first is the final run)."""
    eval_samples: int = 50
    """Evaluation-suite samples per retain label for metrics.json (0: no evaluation suite)."""
    eval_forget_samples: int | None = None
    """Evaluation-suite samples of the forget label (default 6x --eval-samples)."""
    eval_steps: int = 50
    """DDIM steps of the evaluation suite."""
    checkpoint_freq: int | None = None
    """Save the policy every this many training steps (default: a fifth of the run)."""
    vec_env: str = "dummy"
    """Training envs: dummy (one process), subproc (a process per env) or batched (native vector env, loads once)."""
    n_envs: int | None = None
    """Training envs (default: the hyperparameter file's n_envs)."""
    tensorboard: bool = True
    """Write tensorboard events to <out>/tb."""
    progress_bar: bool = True
    """Show a progress bar."""
    torch_threads: int = 1
    """Torch threads of this process (1 avoids oversubscribing a small CPU)."""
    verbose: int = 0
    """SB3 verbosity (0 quiet, 1 training tables)."""


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string right after each field)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for prev, node in itertools.pairwise(body):
        if isinstance(prev, ast.AnnAssign) and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docs[prev.target.id] = str(node.value.value)
    return docs


def add_arguments(parser: argparse.ArgumentParser, settings: type | None = None) -> argparse.ArgumentParser:
    """Add one ``--flag`` per field of a settings dataclass (help = the field's docstring).

    :param parser: the parser (``unlearn-gym train-agent`` passes its sub-parser).
    :param settings: the dataclass (default :class:`Args`; ``agents/rllib_train.py`` passes its own).
    """
    settings = settings or Args
    docs, hints = _field_docs(settings), typing.get_type_hints(settings)
    for f in dataclasses.fields(settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=docs.get(f.name))
        elif typing.get_origin(hint) is list:
            parser.add_argument(flag, action="append", default=None, metavar="KEY=VALUE", help=docs.get(f.name))
        else:
            kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
            parser.add_argument(flag, type=kind, default=default, help=docs.get(f.name))
    return parser


def args_from_namespace(ns: argparse.Namespace) -> Args:
    """:class:`Args` from a parsed namespace (extra attributes, e.g. the CLI's, are ignored).

    :param ns: output of a parser built with :func:`add_arguments`.
    """
    kw = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)}
    kw["set"] = list(kw["set"] or [])
    return Args(**kw)


# ---------------------------------------------------------------------------------------------
def _instances_arg(spec: str) -> str | list[str]:
    """``"a,b"`` -> ``["a", "b"]``; ``"SET:SPLIT"`` stays a string."""
    return [s.strip() for s in spec.split(",") if s.strip()] if "," in spec else spec


def eval_targets(args: Args, env_kwargs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where the final runs are made: ``(label, env kwargs)`` per evaluation instance.

    :param args: the run's settings.
    :param env_kwargs: the training env's arguments.
    """
    from unlearn_gym.envs.instances import INSTANCE_SETS, resolve_instances

    base = {k: v for k, v in env_kwargs.items() if k not in ("instance", "instances")}
    if args.eval_instances:
        names = resolve_instances(_instances_arg(args.eval_instances))
    elif "instances" in env_kwargs:
        spec = env_kwargs["instances"]
        names = resolve_instances(spec)
        if isinstance(spec, str):
            set_name, _, split = spec.partition(":")
            if split in ("", "train") and INSTANCE_SETS[set_name].test:
                names = resolve_instances(f"{set_name}:test")
    elif env_kwargs.get("instance"):
        return [(str(env_kwargs["instance"]), dict(env_kwargs))]
    else:
        return [("env", dict(env_kwargs))]
    return [(n, {**base, "instance": n}) for n in names]


def default_out(args: Args) -> Path:
    """``runs/agents/<algo>-<instance(s) or env>-<protocol>-s<seed>``."""
    label = args.instance or (args.instances or "").replace(":", "-").replace(",", "+") or short_env_id(args.env)
    return Path("runs/agents") / f"{args.algo}-{label}-{args.protocol}-s{args.seed}"


def _episode_summary(seed: int, run: dict[str, Any]) -> dict[str, Any]:
    out = run["outcome"] or {}
    return {"seed": seed, "outcome": out.get("outcome"), "forget": out.get("forget"),
            "retain_mean": out.get("retain_mean"), "one_rate": out.get("one_rate"), "return": run["return"],
            "paper_return": run["paper_return"], "steps": run["steps"], "diverged": run["diverged"],
            "lambdas": run["lambdas"], "scales": run["scales"]}


def _aggregate(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    from unlearn_gym.stats import ci95

    agg: dict[str, Any] = {"n": len(episodes)}
    for key in ("outcome", "paper_return", "return"):
        vals = [e[key] for e in episodes if e.get(key) is not None]
        if vals:
            agg[f"{key}_mean"], agg[f"{key}_ci95"] = ci95(vals)
    return agg


def _resolve(args: Args) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's hyperparameters and env arguments, every check made before anything is written.

    :param args: the run's settings.
    :returns: ``(hyperparameters, env_kwargs)`` (``hp["env_kwargs"]`` is ``env_kwargs``).
    """
    from unlearn_gym.rl.config import check_algo, check_env_kwargs, load_hyperparams

    check_algo(args.algo)
    if args.protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {PROTOCOLS}, got {args.protocol!r}")
    if args.vec_env not in ("dummy", "subproc", "batched"):
        raise ValueError(f"--vec-env must be dummy, subproc or batched, got {args.vec_env!r}")
    if args.n_envs is not None and args.n_envs < 1:
        raise ValueError(f"--n-envs must be >= 1, got {args.n_envs}")
    if args.instance and args.instances:
        raise ValueError("pass --instance (one) or --instances (drawn per episode), not both")
    if args.eval_episodes < 1:
        raise ValueError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    hp = load_hyperparams(args.algo, args.env, args.hyperparams, protocol=args.protocol, overrides=args.set)
    if args.n_envs is not None:
        hp = {**hp, "n_envs": args.n_envs}
    env_kwargs = dict(hp["env_kwargs"])
    if args.instance:
        env_kwargs["instance"] = args.instance
    if args.instances:
        env_kwargs["instances"] = _instances_arg(args.instances)
    if args.protocol == "online":
        if "instances" in env_kwargs:
            raise ValueError("the online protocol is one unlearning run on one instance: use --instance,"
                             " not --instances")
        if hp["n_envs"] != 1 or args.vec_env != "dummy":
            raise ValueError("the online protocol is one unlearning run: n_envs must be 1 with --vec-env dummy")
        env_kwargs["mode"] = "online"
    elif env_kwargs.get("mode", "episodic") != "episodic":
        raise ValueError(f"env_kwargs.mode={env_kwargs['mode']!r} with --protocol episodic; use --protocol online")
    check_env_kwargs(args.env, env_kwargs)  # resolves the env's settings: a bad instance stops here
    eval_targets(args, env_kwargs)  # ... and a bad --eval-instances, both before anything is written
    n_timesteps = int(args.timesteps if args.timesteps is not None else hp["n_timesteps"])
    if n_timesteps < 1:
        raise ValueError(f"--timesteps must be >= 1, got {n_timesteps}")
    return {**hp, "env_kwargs": env_kwargs, "n_timesteps": n_timesteps}, env_kwargs


def _write_config(args: Args, hp: dict[str, Any], out: Path, command: str | None) -> None:
    """``config.json`` and ``hyperparams.yml`` of the run (atomic writes).

    :param args: the run's settings.
    :param hp: the resolved hyperparameters.
    :param out: the run folder.
    :param command: the command line.
    """
    import yaml

    from unlearn_gym.checkpoints import atomic_write_bytes, versions, write_json
    from unlearn_gym.rl.config import default_hyperparams_path

    hp_file = str(args.hyperparams or default_hyperparams_path(args.algo))
    config = {"algo": args.algo, "env": args.env, "protocol": args.protocol, "seed": args.seed,
              "hyperparams_file": hp_file, "hyperparams": hp, "args": dataclasses.asdict(args),
              "command": command, "versions": versions()}
    write_json(out / "config.json", config)
    atomic_write_bytes(out / "hyperparams.yml",
                       yaml.safe_dump({short_env_id(args.env): hp}, sort_keys=False).encode())


def _make_venv(args: Args, hp: dict[str, Any], env_kwargs: dict[str, Any]) -> Any:
    """The training vector env: SB3's dummy/subproc, or the native one behind SB3's API (``batched``),
    wrapped in ``VecNormalize`` when the hyperparameters ask for it.

    :param args: the run's settings.
    :param hp: the resolved hyperparameters.
    :param env_kwargs: the env's arguments.
    """
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    if args.vec_env == "batched":  # the native vector env (unlearn_gym.envs.vector) behind SB3's VecEnv API
        from stable_baselines3.common.vec_env import VecMonitor

        from unlearn_gym.rl.vec import VectorEnvAdapter

        venv = VecMonitor(VectorEnvAdapter(gym.make_vec(args.env, num_envs=hp["n_envs"],
                                                        vectorization_mode="vector_entry_point", **env_kwargs)))
        venv.seed(args.seed)  # copy i gets seed + i, as make_vec_env's env i
    else:
        vec_cls = SubprocVecEnv if args.vec_env == "subproc" else DummyVecEnv
        venv = make_vec_env(args.env, n_envs=hp["n_envs"], seed=args.seed, env_kwargs=env_kwargs,
                            vec_env_cls=vec_cls)
    if hp["normalize"]:
        venv = VecNormalize(venv, **({} if hp["normalize"] is True else dict(hp["normalize"])))
    return venv


def _learn(args: Args, hp: dict[str, Any], venv: Any, out: Path) -> tuple[Any, Any, float]:
    """Build the agent and train it, with checkpoints and the per-episode log.

    :param args: the run's settings.
    :param hp: the resolved hyperparameters.
    :param venv: the training vector env.
    :param out: the run folder.
    :returns: ``(model, log callback, training seconds)``.
    """
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    from unlearn_gym.rl.callbacks import ProgressBar, UnlearnLogCallback
    from unlearn_gym.rl.config import algo_class, model_kwargs

    n_timesteps = hp["n_timesteps"]
    kw = model_kwargs(hp)
    device = kw.pop("device", "cpu")
    model = algo_class(args.algo)(hp["policy"], venv, seed=args.seed, verbose=args.verbose, device=device,
                                  tensorboard_log=str(out / "tb") if args.tensorboard else None, **kw)
    log_cb = UnlearnLogCallback(record_trajectory=args.protocol == "online")
    callbacks: list[Any] = [log_cb, CheckpointCallback(
        save_freq=max(1, (args.checkpoint_freq or max(1, n_timesteps // 5)) // hp["n_envs"]),
        save_path=str(out / "checkpoints"), name_prefix="policy", save_vecnormalize=bool(hp["normalize"]))]
    if args.progress_bar:
        callbacks.append(ProgressBar(log_cb, desc=f"{args.algo} ({args.protocol})"))
    t0 = time.perf_counter()
    model.learn(total_timesteps=n_timesteps, callback=CallbackList(callbacks), tb_log_name=args.algo)
    return model, log_cb, time.perf_counter() - t0


def _final_online(env: Any, rows: list[dict[str, Any]], out: Path, seed: int, save_kw: dict[str, Any]
                  ) -> dict[str, Any]:
    """The online run's unlearned model (the env as training left it): saved, evaluated, summarised.

    :param env: the run's env.
    :param rows: the run's per-step trajectory.
    :param out: the run folder.
    :param seed: the agent's seed.
    :param save_kw: arguments of :func:`~unlearn_gym.rl.evaluation.save_unlearned`.
    """
    from unlearn_gym.rl.evaluation import save_unlearned

    score = env.unwrapped.score() if env.unwrapped.scorer is not None else None
    saved = save_unlearned(env, rows, out / "final", seed=seed, **save_kw)
    run = {"rows": rows, "lambdas": [r["lambda"] for r in rows], "scales": [r["scale"] for r in rows],
           "return": float(sum(r["reward"] for r in rows)),
           "paper_return": float(sum(r["paper_reward"] for r in rows)), "steps": len(rows),
           "diverged": bool(rows and rows[-1]["diverged"]), "outcome": score}
    final = {**_episode_summary(seed, run), "outcome_score": score, **saved}
    return {"final": final, "episodes": [_episode_summary(seed, run)], **_aggregate([_episode_summary(seed, run)])}


def _final_episodic(args: Args, model: Any, normalizer: Any, env_kwargs: dict[str, Any], out: Path,
                    save_kw: dict[str, Any]) -> dict[str, Any]:
    """The trained policy's evaluation episodes on each target; the first one's model saved and evaluated.

    :param args: the run's settings.
    :param model: the trained agent.
    :param normalizer: the frozen ``VecNormalize`` (``None`` without one).
    :param env_kwargs: the training env's arguments.
    :param out: the run folder.
    :param save_kw: arguments of :func:`~unlearn_gym.rl.evaluation.save_unlearned`.
    """
    import gymnasium as gym

    from unlearn_gym.rl.evaluation import run_policy, save_unlearned

    out_final: dict[str, Any] = {}
    targets = eval_targets(args, env_kwargs)
    for label, kwargs in targets:
        env = gym.make(args.env, **kwargs)
        episodes, final = [], {}
        for i in range(args.eval_episodes):
            seed = args.eval_seed + i
            run = run_policy(model, env, seed, normalizer=normalizer)
            episodes.append(_episode_summary(seed, run))
            if i == 0:
                folder = out / "final" if len(targets) == 1 else out / "final" / label
                kw = {**save_kw, "extra": {**save_kw["extra"], "instance": label}}
                saved = save_unlearned(env, run["rows"], folder, seed=seed, **kw)
                final = {**episodes[0], "outcome_score": run["outcome"], **saved}
        env.close()
        out_final[label] = {"final": final, "episodes": episodes, "env_kwargs": kwargs, **_aggregate(episodes)}
    return out_final


def train(args: Args, command: str | None = None) -> dict[str, Any]:
    """Train, save the policy, make the final run(s), save and evaluate the unlearned model(s).

    :param args: the run's settings.
    :param command: the command line (recorded in the outputs).
    :returns: the content of ``result.json``.
    :raises ValueError: bad settings (an unknown hyperparameter is named).
    """
    import torch

    import unlearn_gym  # noqa: F401  (registers the env ids)
    from unlearn_gym.checkpoints import write_json
    from unlearn_gym.rl.evaluation import baseline_references, plot_training

    hp, env_kwargs = _resolve(args)
    torch.set_num_threads(args.torch_threads)
    out = Path(args.out) if args.out else default_out(args)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(args, hp, out, command)

    venv = _make_venv(args, hp, env_kwargs)
    model, log_cb, train_s = _learn(args, hp, venv, out)
    model.save(out / "policy.zip")
    normalizer = None
    if hp["normalize"]:
        venv.save(str(out / "vecnormalize.pkl"))
        normalizer = venv
        normalizer.training = False
    _write_episodes(log_cb.episodes, out)

    result: dict[str, Any] = {
        "algo": args.algo, "env": args.env, "protocol": args.protocol, "seed": args.seed,
        "instance": args.instance, "instances": args.instances, "timesteps": int(model.num_timesteps),
        "train_seconds": round(train_s, 2), "training_episodes": len(log_cb.episodes), "final": {},
    }
    name = f"{args.algo} ({args.protocol})"
    save_kw = {"name": name, "command": command, "eval_samples": args.eval_samples,
               "eval_forget_samples": args.eval_forget_samples, "eval_steps": args.eval_steps,
               "progress": args.progress_bar,
               "extra": {"agent": args.algo, "protocol": args.protocol, "agent_seed": args.seed, "run_dir": str(out)}}
    if args.protocol == "online":
        env = venv.unwrapped.envs[0]  # DummyVecEnv: the run's own env, as training left it
        result["final"]["online"] = _final_online(env, log_cb.trajectory, out, args.seed, save_kw)
        venv.close()
    else:
        venv.close()
        result["final"] = _final_episodic(args, model, normalizer, env_kwargs, out, save_kw)

    plot_training(log_cb.episodes, out / "training.png",  # with the shipped baselines' means, where known
                  references=baseline_references(env_kwargs) if args.protocol == "episodic" else None,
                  title=f"{name} on {args.instance or args.instances or short_env_id(args.env)}")
    write_json(out / "result.json", result)
    _print_summary(result, out)
    return result


def _write_episodes(episodes: list[dict[str, Any]], out: Path) -> None:
    from unlearn_gym.checkpoints import atomic_write_bytes
    from unlearn_gym.methods.outputs import log_csv_bytes

    atomic_write_bytes(out / "training.csv", log_csv_bytes(episodes) if episodes else b"")


def _print_summary(result: dict[str, Any], out: Path) -> None:
    print(f"{result['algo']} ({result['protocol']}) trained {result['timesteps']} steps in"
          f" {result['train_seconds']:.1f} s ({result['training_episodes']} episodes)")
    for label, r in result["final"].items():
        f = r["final"]
        o = f"outcome {f['outcome']:+.3f}" if f.get("outcome") is not None else "no outcome score"
        line = f"  {label}: final run {o}, paper return {f['paper_return']:.3f}, {f['steps']} steps"
        if r["n"] > 1 and "outcome_mean" in r:
            line += f"; {r['n']} seeds: outcome {r['outcome_mean']:+.3f} ± {r['outcome_ci95']:.3f}"
        if f.get("metrics"):
            m = f["metrics"]
            line += (f"; eval trouser {m['trouser_rate']:.3f}, one {m['one_rate']:.3f},"
                     f" digits {m['retain_accuracy']:.3f}")
        print(line)
    print(f"wrote {out}/ (policy.zip, result.json, final/, tb/)")
