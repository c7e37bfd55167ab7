"""Run a trained policy, save what it unlearned, and summarise: shared by :mod:`unlearn_gym.rl.train`,
``agents/rllib_train.py``, the benchmark and tests.

* :func:`run_policy`: one deterministic episode of an SB3 model (any algorithm, recurrent included)
  on an unlearn-gym env; returns the per-step rows, the λ / scale sequences, the return, the
  paper's return and the outcome score.
* :func:`save_unlearned`: the env's current DDPM as an ``unlearned`` checkpoint plus the per-step
  log, config and λ / loss plots (:func:`unlearn_gym.methods.outputs.write_run`), a λ / scale
  trajectory PNG, and optionally the evaluation suite's ``metrics.json``.
* :func:`load_policy`: an SB3 model (and its observation normaliser) from a run folder.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.rl.callbacks import step_row


def run_policy(model: Any, env: Any, seed: int | None, *, normalizer: Any = None,
               options: dict[str, Any] | None = None, deterministic: bool = True) -> dict[str, Any]:
    """One episode of ``model`` (``predict`` with SB3's signature) from ``env.reset(seed=seed)``.

    :param model: an SB3 model or anything with ``predict(obs, state, episode_start, deterministic)``.
    :param env: a (possibly wrapped) unlearn-gym env, not vectorised.
    :param seed: reset seed (episodic envs start from θ_0 at every reset).
    :param normalizer: a ``VecNormalize`` whose ``normalize_obs`` the model's inputs go through.
    :param options: reset options (e.g. ``{"instance": NAME}``).
    :param deterministic: the policy's mean action (the protocols' final run) or a sample.
    :returns: ``rows`` (one dict per step), ``lambdas``, ``scales``, ``return``, ``paper_return``,
        ``steps``, ``diverged``, ``outcome`` (the final ``info["outcome"]`` or ``None``), ``info``.
    """
    obs, info = env.reset(seed=seed, options=options)
    state, start = None, np.ones((1,), dtype=bool)
    rows: list[dict[str, float]] = []
    terminated = truncated = False
    total = 0.0
    while not (terminated or truncated):
        o = np.asarray(obs, dtype=np.float32)[None]
        if normalizer is not None:
            o = normalizer.normalize_obs(o)
        action, state = model.predict(o, state=state, episode_start=start, deterministic=deterministic)
        start = np.zeros((1,), dtype=bool)
        obs, reward, terminated, truncated, info = env.step(np.asarray(action)[0])
        total += float(reward)
        rows.append(step_row(info, float(reward)))
    return {"rows": rows, "lambdas": [r["lambda"] for r in rows], "scales": [r["scale"] for r in rows],
            "return": total, "paper_return": float(sum(r["paper_reward"] for r in rows)), "steps": len(rows),
            "diverged": bool(terminated), "outcome": info.get("outcome"), "info": info}


def plot_trajectory(lambdas: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                    scales: Mapping[str, Sequence[float]] | None = None,
                    bounds: tuple[float, float] | None = None, title: str = "") -> Path:
    """λ per step (and the forget scale per step, log axis, in a second panel), one line per run.

    :param lambdas: run name -> λ per step.
    :param path: PNG destination.
    :param scales: run name -> forget scale per step (``None``: λ only).
    :param bounds: (λ_min, λ_max), drawn dashed.
    :param title: figure title.
    """
    from matplotlib.figure import Figure

    from unlearn_gym.checkpoints import atomic_write_bytes

    panels = 2 if scales else 1
    fig = Figure(figsize=(6.5, 2.6 * panels + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for name, vs in lambdas.items():
        axes[0].plot(range(1, len(vs) + 1), vs, lw=1.2, label=name)
    if bounds is not None:
        for b in bounds:
            axes[0].axhline(b, color="grey", ls="--", lw=0.8)
    axes[0].set(ylabel="λ", title=title or "λ per unlearning step")
    axes[0].legend(loc="best", fontsize="small")
    if scales:
        for name, vs in scales.items():
            axes[1].plot(range(1, len(vs) + 1), vs, lw=1.2, label=name)
        axes[1].set(ylabel="forget scale (ρ)", yscale="log")
    axes[-1].set(xlabel="step")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_training(episodes: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, window: int = 20,
                  references: Mapping[str, float] | None = None, title: str = "training curve") -> Path:
    """Outcome score and paper's return of every training episode against the step, with a running mean.

    :param episodes: :attr:`~unlearn_gym.rl.callbacks.UnlearnLogCallback.episodes`.
    :param path: PNG destination.
    :param window: episodes in the running mean.
    :param references: horizontal lines on the outcome panel (name -> value), e.g. the best constant.
    :param title: figure title.
    """
    import io

    from matplotlib.figure import Figure

    from unlearn_gym.checkpoints import atomic_write_bytes

    keys = [k for k in ("outcome", "paper_return") if any(k in e for e in episodes)]
    fig = Figure(figsize=(6.5, 2.6 * max(1, len(keys)) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(max(1, len(keys)), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        pts = [(e["timesteps"], e[key]) for e in episodes if key in e]
        x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)
        ax.plot(x, y, ".", ms=2, alpha=0.35, color="C0")
        if len(y) >= window:
            ax.plot(x[window - 1:], np.convolve(y, np.ones(window) / window, mode="valid"), color="C0",
                    lw=1.5, label=f"running mean ({window} episodes)")
        if key == "outcome" and references:
            for j, (name, val) in enumerate(references.items()):
                ax.axhline(val, ls="--", lw=1, color=f"C{j + 1}", label=name)
        ax.set(ylabel=key.replace("_", " "))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    axes[0].set(title=title)
    axes[-1].set(xlabel="training step")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def baseline_references(env_kwargs: Mapping[str, Any]) -> dict[str, float]:
    """The shipped (or cached) baselines' mean outcome for :func:`plot_training`'s outcome panel.

    For a run on named instances (``instance`` or ``instances``): the default constant, the best
    constant and the best schedule of each instance (:func:`unlearn_gym.baseline_rows.select`), each
    as its mean outcome over the selection seeds, averaged over the instances. Only rows already on
    disk are read (no episode is played); empty when there is no instance, when a row is missing or
    when the run's other env arguments differ from the rows' (they key the rows).

    :param env_kwargs: the training env's constructor arguments.
    """
    from unlearn_gym.baseline_rows import SELECTION_SEEDS, load_rows, select
    from unlearn_gym.envs.instances import instance_info, resolve_instances

    kw = dict(env_kwargs)
    one, many = kw.pop("instance", None), kw.pop("instances", None)
    if kw.get("mode", "episodic") == "episodic":
        kw.pop("mode", None)
    try:
        names = [str(one)] if one is not None else resolve_instances(many) if many is not None else []
        per_role: dict[str, list[float]] = {}
        tables: dict[str, Any] = {}
        for name in names:
            set_name = instance_info(name)["set"]
            rows = tables.setdefault(set_name, load_rows(set_name, kw))
            for role, policy in select(rows, name).items():
                got = rows.outcomes(name, policy, SELECTION_SEEDS)
                if len(got) == len(SELECTION_SEEDS):  # (the tuned baselines have rows on the evaluation seeds only)
                    per_role.setdefault(role, []).append(float(np.mean(list(got.values()))))
    except (ValueError, KeyError, OSError):  # no rows for these settings: no lines
        return {}
    if not names:
        return {}
    where = "" if len(names) == 1 else f"mean over {len(names)} instances, "
    seeds = f"seeds {SELECTION_SEEDS[0]}-{SELECTION_SEEDS[-1]}"
    return {f"{role} ({where}{seeds})": float(np.mean(vals)) for role, vals in per_role.items()}


def save_unlearned(env: Any, rows: list[dict[str, float]], out_dir: str | os.PathLike, *, name: str,
                   seed: int, extra: dict[str, Any] | None = None, command: str | None = None,
                   eval_samples: int = 50, eval_forget_samples: int | None = None, eval_steps: int = 50,
                   eval_seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Save the env's current model as the unlearned model of a run, with its log and plots, and
    (``eval_samples > 0``) the evaluation suite's report against θ_0.

    Files (in ``out_dir``): ``model.pt`` / ``model.json`` (kind ``unlearned``; ``unlearn-gym evaluate``
    loads it), ``log.csv``, ``config.json``, ``lambda.png``, ``losses.png`` (written by
    :func:`unlearn_gym.methods.outputs.write_run`), ``trajectory.png`` (λ and forget scale) and
    ``metrics.json`` / ``metrics.md`` / ``samples.png``.

    :param env: the unlearn-gym env after the run (its ``unwrapped.model`` is saved; a copy is
        evaluated, so the env is left as it was).
    :param rows: the run's per-step rows (:func:`run_policy` or the online trajectory).
    :param out_dir: destination folder.
    :param name: the method's name in the files (e.g. ``"ppo (episodic)"``).
    :param seed: seed of the run.
    :param extra: further plain values for ``config.json`` (agent, hyperparameters, ...).
    :param command: the command line (recorded in the sidecars).
    :param eval_samples: evaluation samples per retain label (0: no evaluation).
    :param eval_forget_samples: evaluation samples of the forget label (default 6x).
    :param eval_steps: DDIM steps of the evaluation.
    :param eval_seed: noise seed of the evaluation.
    :param progress: show the evaluation's progress bar.
    :returns: ``paths`` (name -> path) and ``metrics`` (the evaluation summary or ``None``).
    """
    from unlearn_gym.methods.outputs import write_run
    from unlearn_gym.methods.runner import RunResult

    base = env.unwrapped
    cfg = dict(base.config)
    model = copy.deepcopy(base.model).eval()
    diverged = bool(rows and rows[-1].get("diverged"))
    params = {**cfg, "lam_min": cfg["lambda_min"], "lam_max": cfg["lambda_max"],
              **(extra or {})}
    result = RunResult(method=name, preset=cfg["preset"], task=cfg["task"], steps=len(rows), seed=int(seed),
                       params=params, model=model, log=[dict(r) for r in rows], diverged=diverged)
    out = Path(out_dir)
    paths = dict(write_run(result, out, command=command))
    scales = {name: [r["scale"] for r in rows]} if cfg["action"] == "lambda+scale" else None
    paths["trajectory_plot"] = plot_trajectory({name: [r["lambda"] for r in rows]}, out / "trajectory.png",
                                               scales=scales, bounds=(cfg["lambda_min"], cfg["lambda_max"]),
                                               title=f"{name}: λ{' and forget scale' if scales else ''} per step")
    metrics = None
    if eval_samples > 0 and not diverged:
        from unlearn_gym.eval.evaluate import evaluate, write_evaluation
        from unlearn_gym.pretrained import load_pretrained

        # the run's own starting model: its family and contamination ratio (a VAE run against the VAE)
        reference = load_pretrained(cfg["preset"], cfg.get("checkpoint"), ratio=cfg["data_ratio"],
                                    model=cfg.get("model", "ddpm"))
        report = evaluate(model, reference, cfg["preset"], samples_per_label=eval_samples,
                          forget_samples=eval_forget_samples, steps=eval_steps, seed=eval_seed,
                          model_name=f"{name} on {cfg['task']} ({len(rows)} steps)",
                          reference_name="pretrained θ_0", progress=progress)
        paths.update({f"metrics_{k}": v for k, v in write_evaluation(
            report, out, scale=max(2, 32 // report.samples["model"].shape[-1])).items()})
        metrics = report.summary
    return {"paths": {k: str(v) for k, v in paths.items()}, "metrics": metrics}


def load_policy(run_dir: str | os.PathLike, algo: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """The trained policy of a run folder written by :func:`unlearn_gym.rl.train.train`.

    :param run_dir: the run's ``--out`` folder (``policy.zip``, ``config.json``, maybe ``vecnormalize.pkl``).
    :param algo: the algorithm (default: the one ``config.json`` records).
    :returns: (SB3 model, observation normaliser or ``None``, the run's config).
    """
    from unlearn_gym.rl.config import algo_class

    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    algo = algo or config.get("algo")
    if algo is None:
        raise ValueError(f"{run}: no config.json; pass algo=")
    model = algo_class(algo).load(run / "policy.zip", device="cpu")
    normalizer = None
    if (run / "vecnormalize.pkl").is_file():
        with open(run / "vecnormalize.pkl", "rb") as f:
            normalizer = pickle.load(f)
        normalizer.training = False
    return model, normalizer, config


def replay(run_dir: str | os.PathLike, label: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Load a run's saved policy and repeat its final run on a fresh env (episodic protocol).

    With the same seed the λ sequence equals the one in ``result.json``: the env, the policy's
    deterministic action and the reset seed fix the run.

    :param run_dir: the run's folder.
    :param label: which evaluation instance (default: the first in ``result.json``).
    :param seed: reset seed (default: the final run's).
    :returns: the output of :func:`run_policy`.
    """
    import gymnasium as gym

    import unlearn_gym  # noqa: F401  (registers the env ids)

    run = Path(run_dir)
    model, normalizer, config = load_policy(run)
    if config.get("protocol") == "online":
        raise ValueError("an online run has no final run to replay: its model is the end of training")
    result = json.loads((run / "result.json").read_text())
    label = label or next(iter(result["final"]))
    target = result["final"][label]
    env = gym.make(config["env"], **target["env_kwargs"])
    try:
        return run_policy(model, env, target["final"]["seed"] if seed is None else seed, normalizer=normalizer)
    finally:
        env.close()
