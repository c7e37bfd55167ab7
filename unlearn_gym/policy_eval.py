"""Evaluate your own policy against the baselines, paired by seed: :func:`evaluate_policy`.

.. code-block:: python

    import unlearn_gym
    from unlearn_gym.policies import CosineSchedule

    result = unlearn_gym.evaluate_policy(CosineSchedule([0.0, 1.0], [0.0, -1.0], dim=2))  # default:test, 10 seeds
    print(result.to_markdown())
    result.plot("eval.png")

Every (instance, seed) is one episode ``gym.make(<family id>, instance=NAME).reset(seed=s)`` played
to its end; its score is ``info["outcome"]["outcome"]``. Seed ``s`` gives every policy the same
mini-batches, noise and timesteps, so the policy is compared with each baseline by the per-seed
differences (paired t, 95 % CI). The baselines and how "best" is chosen: :mod:`unlearn_gym.baseline_rows`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.baseline_rows import (
    ROLES,
    SELECTION_SEEDS,
    TUNED_ROLES,
    compute_rows,
    eval_seeds,
    load_rows,
    select,
)
from unlearn_gym.stats import Paired, better, ci95, paired, worse
from unlearn_gym.user_objects import load_object  # noqa: F401  (re-exported: the CLI and users import it here)

ALL = "all"


@dataclass
class PolicyEvaluation:
    """A policy's outcome on instances × seeds beside the baselines' on the same seeds.

    :param name: the policy's display name.
    :param instances: instance names, in order.
    :param seeds: the evaluation seeds.
    :param selection_seeds: the seeds "best constant" and "best schedule" were chosen on.
    :param info: instance -> ``{"name", "set", "version", "split"}``.
    :param outcome_version: the outcome score's version.
    :param rows: instance -> seed -> the policy's episode (``outcome``, ``return``, ``steps``, ``diverged``, ...).
    :param baselines: instance -> role (:data:`~unlearn_gym.baseline_rows.ROLES`) -> baseline name.
    :param baseline_outcomes: instance -> role -> seed -> outcome.
    :param env_kwargs: env arguments every episode was played with.
    :param notes: caveats (e.g. evaluation seeds that were also selection seeds).
    """

    name: str
    instances: list[str]
    seeds: list[int]
    selection_seeds: list[int]
    info: dict[str, dict[str, Any]]
    outcome_version: int
    rows: dict[str, dict[int, dict[str, Any]]]
    baselines: dict[str, dict[str, str]]
    baseline_outcomes: dict[str, dict[str, dict[int, float]]]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ---- numbers -----------------------------------------------------------------------------
    @property
    def roles(self) -> list[str]:
        """The baselines every instance has, in table order (:data:`ROLES`, then the tuned ones)."""
        return [r for r in (*ROLES, *TUNED_ROLES) if all(r in self.baselines[i] for i in self.instances)]

    def outcomes(self, instance: str = ALL) -> dict[Any, float]:
        """The policy's outcome per seed of one instance, or per ``(instance, seed)`` for ``"all"``."""
        if instance != ALL:
            return {s: r["outcome"] for s, r in self.rows[instance].items()}
        return {(i, s): r["outcome"] for i in self.instances for s, r in self.rows[i].items()}

    def baseline(self, role: str, instance: str = ALL) -> dict[Any, float]:
        """A baseline's outcome, keyed like :meth:`outcomes` (``"all"``: each instance's own baseline of that role)."""
        if instance != ALL:
            return dict(self.baseline_outcomes[instance][role])
        return {(i, s): v for i in self.instances for s, v in self.baseline_outcomes[i][role].items()}

    def mean(self, instance: str = ALL) -> tuple[float, float]:
        """The policy's mean outcome and its 95 % CI half-width (``"all"``: over every episode)."""
        return ci95(list(self.outcomes(instance).values()))

    def mean_return(self, instance: str = ALL) -> float:
        """The policy's mean return (the env's reward summed over the episode)."""
        rows = [r for i in ([instance] if instance != ALL else self.instances) for r in self.rows[i].values()]
        return float(np.mean([r["return"] for r in rows]))

    def diff(self, role: str, instance: str = ALL) -> Paired:
        """``policy - baseline`` paired by seed (``"all"``: by (instance, seed))."""
        return paired(self.outcomes(instance), self.baseline(role, instance))

    def summary(self) -> list[dict[str, Any]]:
        """One dict per instance and one for ``"all"``: the policy's mean, CI, return, each baseline and Δ."""
        out = []
        for inst in [*self.instances, ALL]:
            m, h = self.mean(inst)
            row: dict[str, Any] = {"instance": inst, "n": len(self.outcomes(inst)), "outcome": m, "outcome_ci": h,
                                   "return": self.mean_return(inst)}
            for role in self.roles:
                bm, bh = ci95(list(self.baseline(role, inst).values()))
                row[role] = {"name": self.baselines[inst][role] if inst != ALL else None, "outcome": bm,
                             "outcome_ci": bh, "diff": self.diff(role, inst).to_dict(),
                             "verdict": verdict(self.diff(role, inst))}
            out.append(row)
        return out

    # ---- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (seeds as strings in the per-seed maps)."""
        d = asdict(self)
        d["rows"] = {i: {str(s): r for s, r in rs.items()} for i, rs in self.rows.items()}
        d["baseline_outcomes"] = {i: {role: {str(s): v for s, v in vs.items()} for role, vs in rs.items()}
                                  for i, rs in self.baseline_outcomes.items()}
        d["summary"] = self.summary()
        return d

    def to_markdown(self) -> str:
        """Two tables: the policy against each baseline (paired Δ), and the baselines themselves."""
        sets = sorted({f"{v['set']} v{v['version']}" for v in self.info.values()})
        head = (f"**{self.name}**: outcome score (v{self.outcome_version}) mean ± 95 % CI over seeds"
                f" {_seed_text(self.seeds)} (set {', '.join(sets)}). Δ = policy − baseline, paired by seed"
                f" (paired t, p < 0.05 for better/worse); best constant and best schedule chosen per instance on"
                f" seeds {_seed_text(self.selection_seeds)}.")
        summ = self.summary()
        roles = self.roles
        lines = [head, "", "| instance | episodes | policy outcome | mean return | "
                 + " | ".join(f"Δ vs {r}" for r in roles) + " |", "|---" * (4 + len(roles)) + "|"]
        for row in summ:
            label = f"`{row['instance']}` ({self.info[row['instance']]['split']})" if row["instance"] != ALL else "all"
            cells = [_pm(row["outcome"], row["outcome_ci"]), f"{row['return']:+.3f}"]
            for role in roles:
                d, v = row[role]["diff"], row[role]["verdict"]
                cells.append(f"{_pm(d['mean'], d['ci'])} {f'**{v}**' if v in ('better', 'worse') else v}")
            lines.append(f"| {label} | {row['n']} | " + " | ".join(cells) + " |")
        lines += ["", "| instance | " + " | ".join(roles) + " |", "|---" * (1 + len(roles)) + "|"]
        for row in summ[:-1]:
            cells = [f"{row[r]['name']}: {_pm(row[r]['outcome'], row[r]['outcome_ci'])}" for r in roles]
            lines.append(f"| `{row['instance']}` | " + " | ".join(cells) + " |")
        lines += [f"\n{n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """Bars of the policy and the three baselines per instance (and over all), 95 % CIs; a PNG.

        Needs matplotlib (``pip install 'unlearn-gym[eval]'``).

        :param path: destination.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as e:
            raise ImportError("PolicyEvaluation.plot needs matplotlib: pip install matplotlib"
                              " (or pip install 'unlearn-gym[eval]')") from e
        groups = [*self.instances, ALL] if len(self.instances) > 1 else list(self.instances)
        series = [(self.name, [self.mean(g) for g in groups])]
        series += [(role, [ci95(list(self.baseline(role, g).values())) for g in groups]) for role in self.roles]
        fig = Figure(figsize=(3.0 + 1.9 * len(groups), 3.6), dpi=100, layout="constrained")
        ax = fig.subplots()
        width = 0.8 / len(series)
        x = np.arange(len(groups))
        for k, (label, vals) in enumerate(series):
            means = [v[0] for v in vals]
            errs = [0.0 if not math.isfinite(v[1]) else v[1] for v in vals]
            ax.bar(x + (k - (len(series) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=label)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, [g if len(g) < 24 else g.replace("micro-heavy-", "") for g in groups], fontsize=8)
        ax.set_ylabel(f"outcome score (v{self.outcome_version})")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{self.name}, seeds {_seed_text(self.seeds)} (mean ± 95 % CI)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        return path

    def write(self, directory: str | Path) -> dict[str, Path]:
        """``evaluation.md``, ``evaluation.json`` and (with matplotlib) ``evaluation.png`` in ``directory``."""
        from unlearn_gym.checkpoints import atomic_write_bytes

        d = Path(directory)
        paths = {"md": d / "evaluation.md", "json": d / "evaluation.json"}
        atomic_write_bytes(paths["md"], self.to_markdown().encode())
        atomic_write_bytes(paths["json"], (json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n").encode())
        try:
            paths["png"] = self.plot(d / "evaluation.png")
        except ImportError:
            pass
        return paths


def verdict(p: Paired) -> str:
    """``"better"`` / ``"worse"`` (paired t, p < 0.05), ``"level"`` (identical on every seed) or ``"n.s."``."""
    if better(p, +1):
        return "better"
    if worse(p, +1):
        return "worse"
    if p.n >= 1 and p.mean == 0 and (p.n == 1 or p.ci == 0):
        return "level"
    return "n.s."


def _pm(mean: float, half: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    return f"{mean:+.3f}" if half is None or not math.isfinite(half) else f"{mean:+.3f} ± {half:.3f}"


def _seed_text(seeds: Iterable[int]) -> str:
    s = sorted(seeds)
    if s and s == list(range(s[0], s[0] + len(s))) and len(s) > 2:
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def evaluate_policy(policy: Any, instances: str | list[str] = "default:test", seeds: int | Iterable[int] = 10, *,
                    name: str | None = None, env_kwargs: dict[str, Any] | None = None,
                    selection_seeds: Iterable[int] = SELECTION_SEEDS, cache_dir: str | Path | None = None,
                    progress: bool = True) -> PolicyEvaluation:
    """Play a policy on every instance × seed and compare it with the baselines on the same seeds.

    **The policy** may be a :class:`~unlearn_gym.policies.Policy`, any callable ``obs -> action``
    (or ``(obs, action_dim) -> action``), or a Stable-Baselines3 / sb3-contrib model (anything with
    ``predict(obs, state, episode_start, deterministic)``; ``RecurrentPPO``'s state is carried
    through each episode). It acts deterministically (``deterministic=True``). Details:
    :func:`unlearn_gym.episodes.as_actor`.

    **The episodes**: for each instance, ``gym.make(<its family id>, instance=NAME, **env_kwargs)``;
    for each seed, ``env.reset(seed=s)`` and steps to the episode's end; the score is
    ``info["outcome"]["outcome"]``. ``seeds=10`` means seeds 100-109 (``EVAL_SEED0 = 100``): the
    seeds of the shipped baseline rows of ``default:test`` (so nothing but your policy is played).

    **The baselines** (per instance, as ``docs/headroom.md`` chooses them): the default constant
    (action 0), the best constant and the best schedule of :func:`unlearn_gym.policies.baselines`,
    and for a set with committed tuned parameters (``default``) the tuned constant, tuned schedule
    and tuned feedback controller (:data:`~unlearn_gym.baseline_rows.TUNED_ROLES`).
    "Best" is the highest mean outcome on ``selection_seeds`` (default 0-4, the seeds of the committed
    rows in ``docs/headroom/*.json``, shipped for the ``default``, ``lambda`` and ``vae`` sets), so it
    is not chosen on the default evaluation seeds. Evaluating on a selection seed adds a note: there
    the best-of baselines are flattered by their choice. The baselines' rows come from the shipped
    file or the cache (:mod:`unlearn_gym.baseline_rows`); missing rows (another set, other seeds,
    other ``env_kwargs``) are computed once, with a progress bar, and cached under
    ``$UNLEARN_GYM_HOME/baselines`` (default ``~/.cache/unlearn-gym/baselines``).

    :param policy: the policy to evaluate.
    :param instances: ``"SET:SPLIT"``, ``"SET"`` (its train split) or a list of instance names.
    :param seeds: a count (seeds 100, 101, ...) or the seeds.
    :param name: display name (default: the policy's function or type name).
    :param env_kwargs: further env arguments for every episode, the baselines' included (e.g. a
        smaller ``outcome_config`` or ``device``); they are part of the cache key.
    :param selection_seeds: the seeds on which the best constant and the best schedule are chosen.
    :param cache_dir: where computed baseline rows are cached (default ``$UNLEARN_GYM_HOME/baselines``).
    :param progress: progress bars.
    :returns: a :class:`PolicyEvaluation` (``to_markdown()``, ``plot(path)``, ``summary()``, ``to_dict()``).
    """
    from tqdm.auto import tqdm

    from unlearn_gym.envs.instances import instance_info, resolve_instances
    from unlearn_gym.envs.outcome import OUTCOME_VERSION
    from unlearn_gym.episodes import as_actor, check_spaces, make_instance_env, run_episode

    names = resolve_instances(instances)
    seed_list, sel = eval_seeds(seeds), [int(s) for s in selection_seeds]
    env_kwargs = dict(env_kwargs or {})
    info = {n: instance_info(n) for n in names}
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    bar = tqdm(total=len(names) * len(seed_list), desc="policy episodes", unit="episode", disable=not progress)
    for inst in names:
        env = make_instance_env(inst, env_kwargs)
        check_spaces(policy, env, inst)
        actor = as_actor(policy, int(env.action_space.shape[0]), name)
        name = actor.name
        rows[inst] = {}
        for s in seed_list:
            rows[inst][s] = run_episode(env, actor, s)
            bar.update()
        env.close()
    bar.close()
    chosen, outcomes = {}, {}
    for set_name in dict.fromkeys(v["set"] for v in info.values()):
        table = load_rows(set_name, env_kwargs, cache_dir)
        insts = [n for n in names if info[n]["set"] == set_name]
        compute_rows(table, [(i, p, s) for i in insts for p in _baseline_names(i) for s in sel],
                     progress=progress, directory=cache_dir)
        for i in insts:
            chosen[i] = select(table, i, sel)
        compute_rows(table, [(i, p, s) for i in insts for p in dict.fromkeys(chosen[i].values()) for s in seed_list],
                     progress=progress, directory=cache_dir)
        for i in insts:
            outcomes[i] = {role: table.outcomes(i, name, seed_list) for role, name in chosen[i].items()}
    notes = []
    overlap = sorted(set(seed_list) & set(sel))
    if overlap:
        notes.append(f"Note: seeds {_seed_text(overlap)} are also the selection seeds: on them the best constant and"
                     " the best schedule were chosen by their outcome, which flatters them.")
    return PolicyEvaluation(name=str(name), instances=names, seeds=seed_list, selection_seeds=sel, info=info,
                            outcome_version=OUTCOME_VERSION, rows=rows, baselines=chosen, baseline_outcomes=outcomes,
                            env_kwargs=env_kwargs, notes=notes)


def _baseline_names(instance: str) -> list[str]:
    from unlearn_gym.policies import baselines

    return list(baselines(instance))
