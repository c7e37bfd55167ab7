"""What the benchmark compares: entries (rows), instances (problems) and their resolution.

An :class:`Entry` is one way to get an unlearned model:

* ``baseline``: the pretrained model itself (the "Baseline" column of the seed's Table 1);
* ``method``: a registered method of :mod:`unlearn_gym.methods` (static SISS, the reference
  baselines, adaptive-VI λ, SFD, the hybrid) run by :func:`unlearn_gym.methods.run`;
* ``policy``: a λ policy that needs no training (:mod:`unlearn_gym.policies`) run through the env;
* ``agent``: a Stable-Baselines3 agent trained by :func:`unlearn_gym.rl.train.train` in one of the paper's
  protocols (``episodic``: train, then one run of the frozen policy; ``online``: one run that
  the agent learns during).

An instance is an :class:`~unlearn_gym.envs.instances.Instance`: a registered one (``--instances
default``) or the preset's own problem (``--preset tiny``: the task with the preset's budget,
batch, learning rate and rule). Every entry runs on the instance's budget and hyperparameters.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from unlearn_gym.envs.instances import INSTANCE_SETS, Instance, get_instance, resolve_instances
from unlearn_gym.presets import get_preset
from unlearn_gym.settings import default_hyperparameters
from unlearn_gym.tuned import load_tuned_file

KINDS = ("baseline", "method", "policy", "agent")


@dataclass(frozen=True)
class Entry:
    """One row of the benchmark.

    :param name: unique row name (what ``--methods`` selects).
    :param kind: ``baseline``, ``method``, ``policy`` or ``agent``.
    :param target: the method name, the policy name (``constant``, ``random``, ``linear``,
        ``cosine``; ``tuned``: a tuned baseline, ``params`` ``family`` and ``set``; ``user``: your own,
        ``params`` ``spec``, see :func:`user_policy_entry`) or the algorithm
        (``ppo``, ``sac``, ...); empty for the baseline.
    :param params: the method's or policy's parameters; for an agent the hyperparameter overrides
        (``--set`` style ``key=value`` strings are built from it).
    :param protocol: an agent's protocol, ``episodic`` or ``online``.
    :param group: ``table`` (Table 1) or ``pareto`` (the static-SISS grid of the Pareto front).
    :param label: the column title in Table 1 (default: ``name``).
    """

    name: str
    kind: str
    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None
    group: str = "table"
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"entry kind must be one of {KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(**d)

    def why_not(self, inst: Instance, model: str = "ddpm") -> str | None:
        """Why this entry cannot run on ``inst`` with a model of family ``model`` (``None``: it can).

        :param inst: the instance.
        :param model: ``"ddpm"`` or ``"cvae"``.
        """
        if self.kind == "policy" and self.target == "tuned":
            return _why_not_tuned(self, inst)
        if self.kind != "method":
            return None
        from unlearn_gym.methods import get_method
        from unlearn_gym.methods.registry import serves

        cls = get_method(self.target)
        if not serves(cls, inst.task):
            return f"{self.target} does not serve task {inst.task}"
        if model not in cls.models:
            return f"{self.target} does not unlearn {model} models"
        return None

    @property
    def title(self) -> str:
        return self.label or self.name

    def trial_episodes(self, horizon: int, agent_timesteps: int) -> int | None:
        """Episodes this row used before the evaluated run: what the benchmark's task counts
        (docs/headroom.md, "The benchmark's task, stated plainly").

        Methods, the baseline and fixed policies use none; a tuned baseline used its committed
        search's episodes (search + selection, ``unlearn_gym.tuned``); an episodic agent trains for
        ``ceil(agent_timesteps / horizon)`` episodes; an online agent learns within the evaluated run
        (none). ``None``: unknown (a user policy).

        :param horizon: the instance's episode length in steps.
        :param agent_timesteps: an episodic agent's training steps.
        """
        if self.kind == "agent":
            return 0 if self.protocol == "online" else -(-int(agent_timesteps) // max(1, int(horizon)))
        if self.kind == "policy" and self.target == "user":
            return None
        if self.kind == "policy" and self.target == "tuned":
            budget = load_tuned_file(self.params.get("set", "default"))["families"][self.params["family"]]["budget"]
            return int(budget["search_episodes"]) + int(budget["selection_episodes"])
        return 0


def _why_not_tuned(entry: Entry, inst: Instance) -> str | None:
    """A tuned baseline (``unlearn_gym.tuned``) serves the ``lambda+scale`` instances of the set it was tuned on."""
    set_name = entry.params.get("set", "default")
    names = {i.name for i in INSTANCE_SETS[set_name].split("all")} if set_name in INSTANCE_SETS else set()
    if inst.action != "lambda+scale" or inst.name not in names:
        return (f"{entry.name} was tuned on set {set_name!r} (action 'lambda+scale'); instance {inst.name}"
                f" (action {inst.action!r}) is not in it")
    return None


def _tuned(family: str, label: str) -> Entry:
    return Entry(name=f"tuned-{family}", kind="policy", target="tuned", params={"family": family, "set": "default"},
                 label=label)


def _m(name: str, target: str, label: str = "", group: str = "table", **params: Any) -> Entry:
    return Entry(name=name, kind="method", target=target, params=params, label=label, group=group)


#: the rows of Table 1, in column order (entries a task does not allow are skipped)
DEFAULT_ENTRIES: tuple[Entry, ...] = (
    Entry(name="baseline", kind="baseline", label="Baseline"),
    _m("adaptive-vi", "adaptive-vi", "Dynamic (adaptive-VI λ)"),
    _m("siss", "siss", "SISS (λ 0.5)"),
    _m("siss-no-is", "siss-no-is", "SISS (No IS)"),
    _m("naive-deletion", "naive-deletion", "Naive deletion"),
    _m("neggrad", "neggrad", "NegGrad"),
    _m("erasediff", "erasediff", "EraseDiff"),
    _m("hybrid", "hybrid", "Hybrid SISS+SFD"),
    _m("sfd", "sfd", "SFD (one-step)"),
    _m("sfd-align", "sfd-align", "SFD score alignment"),
    _m("sfd-align-adaptive", "sfd-align-adaptive", "SFD adaptive multi-class"),
    Entry(name="constant", kind="policy", target="constant", label="Constant λ 0.5 (env)"),
    Entry(name="random", kind="policy", target="random", label="Random λ"),
    Entry(name="linear", kind="policy", target="linear", params={"start": 1.0, "end": -1.0},
          label="Linear λ max→min"),
    Entry(name="cosine", kind="policy", target="cosine", params={"start": 1.0, "end": -1.0},
          label="Cosine λ max→min"),
    _tuned("constant", "Tuned constant (λ, ρ)"),
    _tuned("schedule", "Tuned schedule (λ, ρ)"),
    _tuned("feedback", "Tuned feedback ρ"),
    Entry(name="ppo-episodic", kind="agent", target="ppo", protocol="episodic", label="PPO-λ (episodic)"),
    Entry(name="ppo-online", kind="agent", target="ppo", protocol="online", label="PPO-λ (online)"),
    Entry(name="sac-episodic", kind="agent", target="sac", protocol="episodic", label="SAC-λ (episodic)"),
    Entry(name="sac-online", kind="agent", target="sac", protocol="online", label="SAC-λ (online)"),
)


def user_policy_entry(spec: str, name: str | None = None) -> Entry:
    """A benchmark row for your own policy ``MODULE:OBJECT`` (``unlearn-gym benchmark --policy``).

    The policy is loaded in each cell by :func:`unlearn_gym.user_objects.load_object` (a class is
    instantiated, a factory called) and played through the env as
    :func:`unlearn_gym.evaluate_policy` plays it (a :class:`~unlearn_gym.policies.Policy`, a callable
    ``obs -> action`` or an SB3 model), on the instance's default observation. The row's cache key
    holds the spec and the digest of the module's source, so editing the file recomputes the row
    (weights loaded from elsewhere are not in the key: pass a new ``--out`` when they change).

    :param spec: ``"MODULE:OBJECT"``.
    :param name: the row name (default ``user:OBJECT``).
    """
    from unlearn_gym.user_objects import source_digest, split_spec

    _, attr = split_spec(spec)
    name = name or f"user:{attr}"
    return Entry(name=name, kind="policy", target="user", params={"spec": spec, "source": source_digest(spec)},
                 label=name)


def pareto_entries(lambdas: tuple[float, ...], scales: tuple[float, ...]) -> tuple[Entry, ...]:
    """Static SISS over a λ grid (the preset's rule) and over the forget scale ρ (``ratio`` rule, λ 0.5).

    :param lambdas: the λ values.
    :param scales: the ρ values of the ratio rule.
    """
    out = [_m(f"siss-lam{lam:g}", "siss", f"SISS λ {lam:g}", group="pareto", lam=float(lam)) for lam in lambdas]
    out += [_m(f"siss-rho{r:g}", "siss", f"SISS ρ {r:g}", group="pareto", rule="ratio", scale=float(r))
            for r in scales]
    return tuple(out)


def select_entries(entries: tuple[Entry, ...], names: list[str] | None) -> list[Entry]:
    """The entries named in ``names`` (fnmatch patterns, e.g. ``siss*``; kinds such as ``agent``
    select every entry of that kind), in their table order; ``None`` selects all.

    :param entries: the candidates.
    :param names: names, patterns or kinds.
    :raises ValueError: a name that selects nothing (the message lists the names).
    """
    if not names:
        return list(entries)
    chosen = []
    for pattern in names:
        hit = [e for e in entries if fnmatch.fnmatchcase(e.name, pattern) or e.kind == pattern]
        if not hit:
            raise ValueError(f"--methods {pattern!r} matches no entry; entries: {', '.join(e.name for e in entries)}"
                             f" (or a kind: {', '.join(KINDS)})")
        chosen += [e for e in hit if e not in chosen]
    order = {e.name: i for i, e in enumerate(entries)}
    return sorted(chosen, key=lambda e: order[e.name])


def preset_instance(preset: str, task: str = "trousers", model: str = "ddpm") -> Instance:
    """The preset's own problem as an instance: the task at the preset's horizon, batch, learning
    rate, rule and constant (the ``erase-<d>`` defaults for erase tasks; the VAE's own learning rate
    and ρ for ``model="cvae"``), the paper's λ action and reward, the shipped model of
    contamination ratio 0.1.

    :param preset: preset name.
    :param task: ``trousers`` or ``erase-<digit>``.
    :param model: ``"ddpm"`` or ``"cvae"`` (the class-conditional VAE).
    """
    p = get_preset(preset)
    d = default_hyperparameters(p, task, model)  # the env's and the methods' defaults, decided once
    name = f"{p.name}-{task}" + ("-cvae" if model == "cvae" else "")
    return Instance(
        name=name, preset=p.name, task=task, data_ratio=0.1, horizon=d["horizon"],
        batch_size=d["batch_size"], lr=d["lr"], rule=d["rule"], scale=d["scale"],
        action="lambda", reward="siss", model=model,
        description=f"the {p.name} preset's defaults on task {task}" + (" (VAE)" if model == "cvae" else ""),
    )


def resolve_bench_instances(preset: str, instances: str | list[str] | None, task: str = "trousers",
                            model: str = "ddpm") -> list[Instance]:
    """The instances a benchmark runs on: ``instances`` (a set spec ``SET[:SPLIT]`` or names), else
    the preset's own problem.

    :param preset: the preset (used when ``instances`` is ``None``).
    :param instances: a set spec, a comma-separated string of names, or a list of names.
    :param task: the task of the preset's own problem.
    :param model: model family; every instance must be one of that family (an instance fixes its
        family: the ``vae`` set for ``"cvae"``, the others for ``"ddpm"``).
    """
    if instances is None:
        return [preset_instance(preset, task, model)]
    if isinstance(instances, str) and "," in instances:
        instances = [s.strip() for s in instances.split(",") if s.strip()]
    out = [get_instance(n) for n in resolve_instances(instances)]
    other = [i.name for i in out if i.model != model]
    if other:
        fams = sorted({s.name for s in INSTANCE_SETS.values() for i in s.split("all") if i.model == model})
        raise ValueError(f"instances {other} are not {model} instances (an instance fixes its model family);"
                         f" {model} instance sets: {fams or 'none'}; pass --model to match, or other instances")
    return out
