"""One cell of the benchmark: (entry, instance, seed) -> an unlearned model -> its measures.

:func:`run_cell` is a plain function of plain values (a :class:`CellSpec` as a dict), so the local
process pool and Ray run the very same code. A cell never writes the cache itself: it returns its
result and the driver stores it (a Ray worker on another machine has no access to the driver's disk).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import resource
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearn_gym.benchmark.entries import Entry
from unlearn_gym.envs.instances import Instance, get_instance
from unlearn_gym.rng import preserved_global_rngs

#: bump when a cell's meaning changes: cached results of another version are recomputed
BENCH_VERSION = 1


@dataclass(frozen=True)
class BenchSettings:
    """How every cell is run and measured (part of each cell's cache key).

    :param eval_samples: evaluation-suite samples per retain label.
    :param eval_forget_samples: samples of the forget label (``None``: 6x ``eval_samples``).
    :param eval_steps: DDIM steps of the evaluation suite.
    :param eval_seed: seed of the evaluation noise (the same for every cell: common random numbers).
    :param steps: unlearning steps of every run (``None``: the instance's horizon).
    :param agent_timesteps: training steps of an episodic agent (an online agent's run is the horizon).
    :param outcome: also compute the env's outcome score (``unlearn_gym.envs.outcome``).
    :param forget_tests: also run the forget tests against the retrained model of the instance's task
        (:mod:`unlearn_gym.benchmark.forgetting`; about 40 s per micro cell).
    """

    eval_samples: int = 50
    eval_forget_samples: int | None = None
    eval_steps: int = 50
    eval_seed: int = 0
    steps: int | None = None
    agent_timesteps: int = 2000
    outcome: bool = True
    forget_tests: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["forget_tests"]:  # absent when off: keys made before the forget tests stay valid
            d.pop("forget_tests")
        return d


@dataclass
class CellSpec:
    """Everything one cell needs, as plain values.

    :param entry: the row.
    :param instance: the problem.
    :param seed: the run's seed (batches, noise, policy and agent seeds).
    :param settings: measurement settings.
    :param workdir: a folder for the cell's own files (an agent's run folder); ``None``: a temp dir.
    :param model: model family, ``"ddpm"`` or ``"cvae"``.
    :param device: where the cell's models run (``"cpu"``, ``"cuda"``, ``"cuda:N"``); part of the key
        unless ``"cpu"`` (a GPU run's numbers differ from a CPU run's in the last digits).
    """

    entry: Entry
    instance: Instance
    seed: int
    settings: BenchSettings = field(default_factory=BenchSettings)
    workdir: str | None = None
    model: str = "ddpm"
    device: str = "cpu"

    def key(self) -> str:
        """The cache key: a hash of the resolved configuration (not of the work folder)."""
        inst = asdict(self.instance)
        inst.pop("model")  # the family is d["model"] below (keys made before Instance.model stay valid)
        d = {"version": BENCH_VERSION, "entry": self.entry.to_dict(), "instance": inst,
             "seed": self.seed, "settings": self.settings.to_dict()}
        if self.model != "ddpm":  # (absent for the DDPM: keys made before the VAE rows stay valid)
            d["model"] = self.model
        if self.device != "cpu":  # (absent on the CPU: keys made before --device stay valid)
            d["device"] = self.device
        if self.settings.forget_tests and self.instance.task != "trousers":
            d["erase_forget_tests"] = 1  # erase cells made before their forget tests existed lack them
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.to_dict(), "instance": asdict(self.instance), "seed": self.seed,
                "settings": self.settings.to_dict(), "workdir": self.workdir, "model": self.model,
                "device": self.device}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        inst = dict(d["instance"])
        if inst.get("scale_range") is not None:
            inst["scale_range"] = tuple(inst["scale_range"])
        return cls(entry=Entry.from_dict(d["entry"]), instance=Instance(**inst), seed=int(d["seed"]),
                   settings=BenchSettings(**d["settings"]), workdir=d.get("workdir"), model=d.get("model", "ddpm"),
                   device=d.get("device", "cpu"))

    @property
    def label(self) -> str:
        return f"{self.entry.name} · {self.instance.name} · seed {self.seed}"


# ---------------------------------------------------------------------------------------------
# Per-process context: reference model, its evaluation samples, classifier and outcome scorer are
# made once per (instance, settings) and reused by every cell the process runs.
_CONTEXT: dict[str, dict[str, Any]] = {}


def _context(inst: Instance, s: BenchSettings, model: str = "ddpm", device: str = "cpu") -> dict[str, Any]:
    key = json.dumps([inst.preset, inst.task, inst.data_ratio, s.eval_samples, s.eval_forget_samples,
                      s.eval_steps, s.eval_seed, s.outcome, model, device])
    if key not in _CONTEXT:
        from unlearn_gym.data import build_contaminated_mnist
        from unlearn_gym.eval.evaluate import evaluate
        from unlearn_gym.pretrained import load_classifier, load_pretrained

        reference = load_pretrained(inst.preset, ratio=inst.data_ratio, model=model, device=device).eval()
        classifier = load_classifier(inst.preset)
        data = build_contaminated_mnist(inst.preset)
        t0 = time.perf_counter()
        ref_report = evaluate(reference, reference, inst.preset, classifier=classifier, data=data,
                              samples_per_label=s.eval_samples, forget_samples=s.eval_forget_samples,
                              steps=s.eval_steps, seed=s.eval_seed, keep_samples=True, progress=False,
                              model_name="pretrained", classifier_name="shipped")
        ctx = {"reference": reference, "classifier": classifier, "data": data,
               "reference_samples": ref_report.samples["model"], "reference_report": ref_report,
               "reference_eval_s": time.perf_counter() - t0, "scorer": None}
        if s.outcome:
            from unlearn_gym.envs.outcome import OutcomeScorer

            ctx["scorer"] = OutcomeScorer(reference, classifier, inst.task)
        _CONTEXT[key] = ctx
    return _CONTEXT[key]


def registered(inst: Instance) -> bool:
    """Whether ``inst`` is a registered instance (else it is a preset's own problem)."""
    try:
        return get_instance(inst.name) == inst
    except ValueError:
        return False


def env_kwargs_of(spec: CellSpec) -> dict[str, Any]:
    """``gym.make`` arguments that pose the cell's problem: ``instance=NAME`` for a registered
    instance at its own budget, else every argument of the instance with the run's horizon (an
    instance fixes its horizon, so another budget must be posed explicitly); ``model`` for a VAE,
    ``device`` off the CPU."""
    inst = spec.instance
    if registered(inst) and spec.settings.steps is None:
        kw: dict[str, Any] = {"instance": inst.name}
    else:
        kw = {**inst.env_kwargs(), "horizon": horizon_of(spec)}
        kw.pop("model")  # posed below from the cell, and only when it is not the default
    if spec.model != "ddpm":
        kw["model"] = spec.model
    if spec.device != "cpu":
        kw["device"] = spec.device
    return kw


def horizon_of(spec: CellSpec) -> int:
    """Unlearning steps of the cell's run."""
    return int(spec.settings.steps or spec.instance.horizon)


# ---------------------------------------------------------------------------------------------
def _run_method(spec: CellSpec) -> dict[str, Any]:
    from unlearn_gym.methods import get_method, run

    inst, e = spec.instance, spec.entry
    cls = get_method(e.target)
    kw = dict(e.params)
    setup: dict[str, Any] = {"batch_size": inst.batch_size, "data_ratio": inst.data_ratio, "model": spec.model,
                             "device": spec.device}
    if "lr" not in cls.setup_defaults:
        setup["lr"] = inst.lr
    if "rule" in cls.params and "rule" not in kw:
        kw["rule"], kw["scale"] = inst.rule, kw.get("scale", inst.scale)
    result = run(e.target, preset=inst.preset, task=inst.task, steps=horizon_of(spec), seed=spec.seed,
                 **setup, **kw)
    lam = result.column("lambda")
    return {"model": result.model, "unlearn_s": result.seconds, "diverged": result.diverged,
            "steps_done": len(result.log), "lambdas": None if all(math.isnan(v) for v in lam) else lam,
            "params": result.params}


def make_policy(entry: Entry) -> Any:
    """The :mod:`unlearn_gym.policies` policy of a ``policy`` entry (target ``tuned``: the committed
    parameters of :func:`unlearn_gym.tuned.load_tuned`, ``params`` ``family`` and ``set``)."""
    from unlearn_gym import policies

    if entry.target == "tuned":
        from unlearn_gym.tuned import ENTRY_NAMES, load_tuned

        return load_tuned(entry.params.get("set", "default"))[ENTRY_NAMES[entry.params["family"]]]
    classes = {"constant": policies.ConstantPolicy, "random": policies.RandomPolicy,
               "linear": policies.LinearSchedule, "cosine": policies.CosineSchedule,
               "two-phase": policies.StepSchedule}
    if entry.target not in classes:
        raise ValueError(f"unknown policy {entry.target!r}; known: {sorted(classes)}")
    return classes[entry.target](**entry.params)


def _env(spec: CellSpec, **over: Any) -> Any:
    import gymnasium as gym

    import unlearn_gym  # noqa: F401  (registers the ids)

    return gym.make("unlearn_gym:SISSUnlearn-v0", **{**env_kwargs_of(spec), "outcome": False, "reward": "siss",
                                                     **over})


def _user_policy(entry: Entry, env: Any) -> Any:
    """A user's ``MODULE:OBJECT`` as ``policy(obs, dim)`` with a ``reset(seed)`` (what :func:`rollout` calls)."""
    from unlearn_gym.episodes import as_actor, check_spaces
    from unlearn_gym.policies import Policy
    from unlearn_gym.user_objects import load_object

    obj = load_object(entry.params["spec"])
    check_spaces(obj, env, entry.name)
    actor = as_actor(obj, int(env.action_space.shape[0]), entry.name)

    class _Adapter(Policy):
        def reset(self, seed: int | None = None) -> None:
            actor.reset(seed)

        def __call__(self, obs: Any, dim: int) -> Any:
            return actor.act(obs)

    return _Adapter()


def _run_policy(spec: CellSpec) -> dict[str, Any]:
    from unlearn_gym.policies import rollout

    env = _env(spec)
    policy = _user_policy(spec.entry, env) if spec.entry.target == "user" else make_policy(spec.entry)
    t0 = time.perf_counter()
    out = rollout(env, policy, seed=spec.seed)
    secs = time.perf_counter() - t0
    model = copy.deepcopy(env.unwrapped.model).eval()
    env.close()
    return {"model": model, "unlearn_s": secs, "diverged": bool(out["terminated"]), "steps_done": out["steps"],
            "lambdas": out["lambdas"], "scales": out["scales"], "paper_return": out["paper_return"],
            "env_steps_per_s": out["steps"] / secs if secs > 0 else None}


def agent_overrides(spec: CellSpec) -> list[str]:
    """The ``--set`` overrides of an agent cell: the instance's env arguments (for a preset's own
    problem), no per-episode outcome score unless the reward needs it, for the online protocol an
    update window K that divides the run (at most a quarter of it: the paper's K = 256 is longer
    than a whole budget here), and SAC's random warm-up capped at a quarter of the training steps.
    """
    inst, h = spec.instance, horizon_of(spec)
    # the problem's env arguments (JSON is YAML); a registered instance goes as --instance instead
    sets = [f"env_kwargs.{k}={json.dumps(v)}" for k, v in env_kwargs_of(spec).items() if k != "instance"]
    if inst.reward != "outcome":
        sets.append("env_kwargs.outcome=false")
    if spec.entry.protocol == "online":  # K divides the run, so the agent makes exactly h steps
        k = max(d for d in range(1, max(1, h // 4) + 1) if h % d == 0)
        if spec.entry.target in ("ppo", "a2c", "recurrentppo"):
            sets += [f"n_steps={k}", f"batch_size={k}"] if spec.entry.target != "a2c" else [f"n_steps={k}"]
        elif spec.entry.target in ("sac", "tqc"):
            sets += [f"learning_starts={k}", f"batch_size={min(64, k)}"]
    elif spec.entry.target in ("sac", "tqc"):  # learn from the first quarter of a short budget on
        sets.append(f"learning_starts={min(300, max(1, spec.settings.agent_timesteps // 4))}")
    return sets + [f"{k}={json.dumps(v)}" for k, v in spec.entry.params.items()]


def _run_agent(spec: CellSpec, workdir: Path) -> dict[str, Any]:
    from unlearn_gym.pretrained import load_model_file
    from unlearn_gym.rl.train import Args, train

    inst, e = spec.instance, spec.entry
    online = e.protocol == "online"
    args = Args(algo=e.target, env="SISSUnlearn-v0",
                instance=env_kwargs_of(spec).get("instance"),
                protocol=e.protocol or "episodic",
                timesteps=horizon_of(spec) if online else spec.settings.agent_timesteps, seed=spec.seed,
                out=str(workdir), set=agent_overrides(spec), eval_seed=spec.seed, eval_samples=0,
                tensorboard=False, progress_bar=False, torch_threads=torch.get_num_threads())
    t0 = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "train.log", "w") as log, contextlib.redirect_stdout(log):
        res = train(args)
    secs = time.perf_counter() - t0
    (block,) = res["final"].values()
    final = block["final"]
    model = load_model_file(final["paths"]["model"], inst.preset).to(spec.device).eval()  # the file says its family
    return {"model": model, "unlearn_s": secs, "train_s": res["train_seconds"], "diverged": bool(final["diverged"]),
            "steps_done": final["steps"], "lambdas": final["lambdas"], "scales": final["scales"],
            "paper_return": final["paper_return"], "timesteps": res["timesteps"], "run_dir": str(workdir)}


# ---------------------------------------------------------------------------------------------
def table_metrics(report: Any, task: str) -> dict[str, Any]:
    """The Table 1 numbers of an evaluation: FID, KID, IS, SSIM on the forget and retain side,
    the forget score and retain accuracy.

    ``trousers``: the forget side is label 1 (against real trousers; SSIM over the pairs whose
    reference sample is a trouser), the retain side every other label. ``erase-<d>``: the forget side
    is label d (against real d's), the retain side the mean of the per-label values of the others.

    :param report: an :class:`~unlearn_gym.eval.report.EvalReport`.
    :param task: the task.
    """
    s, rows = report.summary, {int(r["label"]): r for r in report.per_class}
    if task == "trousers":
        return {
            "forget_fid": s["forget_fid"], "forget_kid": s["forget_kid"],
            "forget_is": rows[1]["inception_score"], "forget_ssim": s.get("forget_ssim"),
            "forget_score": s["trouser_rate"], "one_rate": s["one_rate"],
            "retain_fid": s["retain_fid"], "retain_kid": s["retain_kid"], "retain_is": s["retain_is"],
            "retain_ssim": s.get("retain_ssim"), "retain_accuracy": s["retain_accuracy"],
            "min_retain_accuracy": s["min_retain_accuracy"],
        }
    d = int(task.split("-", 1)[1])
    kept = [r for lab, r in rows.items() if lab != d]

    def mean(key: str) -> float | None:
        vals = [r[key] for r in kept if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "forget_fid": rows[d]["fid"], "forget_kid": rows[d]["kid"], "forget_is": rows[d]["inception_score"],
        "forget_ssim": rows[d].get("ssim"), "forget_score": rows[d]["accuracy"], "one_rate": None,
        "retain_fid": mean("fid"), "retain_kid": mean("kid"), "retain_is": mean("inception_score"),
        "retain_ssim": mean("ssim"), "retain_accuracy": mean("accuracy"),
        "min_retain_accuracy": min(r["accuracy"] for r in kept),
    }


PER_CLASS_KEYS = ("label", "fid", "kid", "inception_score", "ssim", "accuracy", "confident_trouser")


def run_cell(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and measure its model; never raises (an error is returned as ``status: error``).

    :param spec_dict: :meth:`CellSpec.to_dict`.
    :returns: ``key``, ``entry``, ``instance``, ``seed``, ``status`` and, when ``ok``: ``metrics``
        (:func:`table_metrics`), ``per_class``, ``outcome``, ``timing``, ``lambdas``, ...
    """
    spec = CellSpec.from_dict(spec_dict)
    base = {"key": spec.key(), "entry": spec.entry.name, "kind": spec.entry.kind, "group": spec.entry.group,
            "instance": spec.instance.name, "seed": spec.seed, "host": os.uname().nodename, "pid": os.getpid()}
    t0 = time.perf_counter()
    try:
        with preserved_global_rngs():  # SB3 seeds the global RNGs: the caller's streams stay untouched
            out = _run_cell(spec)
        return {**base, **out, "status": "ok", "timing_total_s": round(time.perf_counter() - t0, 2)}
    except Exception as exc:  # a failing cell is reported, the others go on
        return {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8), "timing_total_s": round(time.perf_counter() - t0, 2)}


def _run_cell(spec: CellSpec) -> dict[str, Any]:
    import tempfile

    from unlearn_gym.eval.evaluate import evaluate

    inst, e, s = spec.instance, spec.entry, spec.settings
    ctx_t0 = time.perf_counter()
    ctx = _context(inst, s, spec.model, spec.device)
    ctx_s = time.perf_counter() - ctx_t0
    if e.kind == "baseline":
        run: dict[str, Any] = {"model": ctx["reference"], "unlearn_s": 0.0, "diverged": False, "steps_done": 0,
                               "lambdas": None}
    elif e.kind == "method":
        run = _run_method(spec)
    elif e.kind == "policy":
        run = _run_policy(spec)
    else:
        if spec.workdir:
            run = _run_agent(spec, Path(spec.workdir))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                run = _run_agent(spec, Path(tmp))
            run.pop("run_dir")
    model: nn.Module = run.pop("model")
    out: dict[str, Any] = {k: v for k, v in run.items() if k != "params"}
    if run.get("lambdas") is not None:
        out["lambdas"] = [round(float(v), 5) for v in run["lambdas"]]
    if run.get("scales") is not None:
        out["scales"] = [round(float(v), 5) for v in run["scales"]]
    timing = {"unlearn_s": round(run["unlearn_s"], 2), "context_s": round(ctx_s, 2)}
    if not run["diverged"]:
        if model is ctx["reference"]:  # the baseline: the context has evaluated it already, alike
            report, timing["eval_s"] = ctx["reference_report"], round(ctx["reference_eval_s"], 2)
        else:
            t1 = time.perf_counter()
            report = evaluate(model, ctx["reference"], inst.preset, classifier=ctx["classifier"], data=ctx["data"],
                              samples_per_label=s.eval_samples, forget_samples=s.eval_forget_samples,
                              steps=s.eval_steps, seed=s.eval_seed, keep_samples=False, progress=False,
                              reference_samples=ctx["reference_samples"], model_name=e.name,
                              classifier_name="shipped")
            timing["eval_s"] = round(time.perf_counter() - t1, 2)
        out["metrics"] = table_metrics(report, inst.task)
        out["per_class"] = [{k: r.get(k) for k in PER_CLASS_KEYS} for r in report.per_class]
        if ctx["scorer"] is not None:
            t2 = time.perf_counter()
            sc = ctx["scorer"].score(model)
            timing["outcome_s"] = round(time.perf_counter() - t2, 2)
            out["outcome"] = {k: sc[k] for k in ("outcome", "forget", "retain_mean", "retain_worst", "one_rate",
                                                 "retain_drop", "outcome_se", "version")}
        if s.forget_tests:
            from unlearn_gym.benchmark.forgetting import forget_summary
            from unlearn_gym.pretrained import model_family

            t3 = time.perf_counter()
            out["forget"] = forget_summary(model, inst.preset, inst.data_ratio, model_family(model), spec.seed,
                                           spec.device, task=inst.task)
            timing["forget_s"] = round(time.perf_counter() - t3, 2)
    timing["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    timing["torch_threads"] = torch.get_num_threads()
    out["timing"] = timing
    return out
