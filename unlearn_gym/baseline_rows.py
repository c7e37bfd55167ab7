"""The baselines' outcome per (instance, policy, seed), computed once per set version and cached or shipped.

:func:`unlearn_gym.evaluate_policy` compares a policy with the baselines of
:func:`unlearn_gym.policies.baselines` on the same seeds. Their rows live in one JSON file per
(instance set, set version, outcome score version, env kwargs):

* shipped with the package: ``unlearn_gym/assets/baselines-<set>-v<version>-outcome<v>.json``;
* computed on demand: ``$UNLEARN_GYM_HOME/baselines/`` (default ``~/.cache/unlearn-gym/baselines/``),
  written atomically (temp file + rename).

Rows are keyed by instance, policy display name and seed; a file says which seeds it holds.
Lookups merge the shipped and the cached file; missing rows are computed (with a progress bar)
and added to the cached one. A new set version or outcome score version is a new file, so rows
of different versions never mix.

**Which baselines.** Per instance, as ``docs/headroom.md`` chooses them: the *default constant*
(action 0, :data:`~unlearn_gym.policies.DEFAULT_CONSTANT`), the *best constant* (highest mean
outcome among the constants) and the *best schedule* (highest mean among the schedules). "Best"
is chosen on :data:`SELECTION_SEEDS` (0-4: the seeds of the committed rows in
``docs/headroom/*.json``, shipped here for the ``default``, ``lambda`` and ``vae`` sets), never
on the evaluation seeds, which start at :data:`EVAL_SEED0` (100) by default. For a set with committed
tuned parameters (``default``) also the *tuned constant*, *tuned schedule* and *tuned feedback*
(:data:`TUNED_ROLES`), found by search on the train split with search seeds 1000+.

Regenerate the shipped file (``benchmarks/ship_baselines.py``)::

    OMP_NUM_THREADS=1 python benchmarks/ship_baselines.py --set default --split test --seeds 10
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.policies import DEFAULT_CONSTANT, ConstantPolicy, baselines

#: seeds on which "best constant" and "best schedule" are chosen (those of ``docs/headroom/*.json``)
SELECTION_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
#: ``seeds=n`` evaluates seeds ``EVAL_SEED0 .. EVAL_SEED0 + n - 1`` (disjoint from the selection seeds)
EVAL_SEED0 = 100
#: what a row keeps of an episode
ROW_FIELDS = ("outcome", "forget", "retain_mean", "steps")
#: the three comparisons of a policy evaluation, in table order
ROLES = ("default constant", "best constant", "best schedule")
#: the tuned baselines (``docs/headroom.md`` v3), for the sets that have committed tuned parameters
#: (:func:`unlearn_gym.tuned.load_tuned`), role -> policy name
TUNED_ROLES = {"tuned constant": "tuned-constant", "tuned schedule": "tuned-schedule",
               "tuned feedback": "tuned-feedback"}
FORMAT = 1


def eval_seeds(seeds: int | Iterable[int]) -> list[int]:
    """``n`` -> ``[EVAL_SEED0, ..., EVAL_SEED0 + n - 1]``; a sequence -> its seeds (order kept, no repeats).

    :param seeds: a count or the seeds.
    """
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return list(range(EVAL_SEED0, EVAL_SEED0 + int(seeds)))
    out = list(dict.fromkeys(int(s) for s in seeds))
    if not out:
        raise ValueError("seeds selects no seed")
    return out


def kwargs_tag(env_kwargs: dict[str, Any] | None) -> str:
    """``""`` for no env kwargs, else ``"-kw<10 hex digits>"`` of their canonical JSON."""
    if not env_kwargs:
        return ""
    blob = json.dumps(env_kwargs, sort_keys=True, default=str).encode()
    return "-kw" + hashlib.sha256(blob).hexdigest()[:10]


@dataclass
class BaselineRows:
    """The rows of one (set, set version, outcome version, env kwargs).

    :param set_name: instance set.
    :param version: the set's version.
    :param outcome_version: :data:`unlearn_gym.envs.outcome.OUTCOME_VERSION` of the rows.
    :param env_kwargs: env constructor arguments the rows were played with (``{}``: the instance's own).
    :param rows: instance -> policy name -> seed -> row (:data:`ROW_FIELDS`).
    :param sources: where the rows came from (free text per batch of rows).
    """

    set_name: str
    version: int
    outcome_version: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[int, dict[str, Any]]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def current(cls, set_name: str, env_kwargs: dict[str, Any] | None = None) -> BaselineRows:
        """An empty table keyed by the set's current version and the current outcome score version."""
        from unlearn_gym.envs.instances import INSTANCE_SETS
        from unlearn_gym.envs.outcome import OUTCOME_VERSION

        return cls(set_name, INSTANCE_SETS[set_name].version, OUTCOME_VERSION, dict(env_kwargs or {}))

    @property
    def file_name(self) -> str:
        """``baselines-<set>-v<version>-outcome<v>[-kw<hash>].json``."""
        tag = kwargs_tag(self.env_kwargs)
        return f"baselines-{self.set_name}-v{self.version}-outcome{self.outcome_version}{tag}.json"

    def same_key(self, other: BaselineRows) -> bool:
        return (self.set_name, self.version, self.outcome_version, kwargs_tag(self.env_kwargs)) == (
            other.set_name, other.version, other.outcome_version, kwargs_tag(other.env_kwargs))

    def get(self, instance: str, policy: str, seed: int) -> dict[str, Any] | None:
        return self.rows.get(instance, {}).get(policy, {}).get(int(seed))

    def add(self, instance: str, policy: str, seed: int, row: dict[str, Any]) -> None:
        kept = {k: row[k] for k in ROW_FIELDS if k in row}
        self.rows.setdefault(instance, {}).setdefault(policy, {})[int(seed)] = kept

    def merge(self, other: BaselineRows) -> None:
        """Add ``other``'s rows (same key) and sources."""
        if not self.same_key(other):
            raise ValueError(f"cannot merge {other.file_name} into {self.file_name}")
        for inst, pols in other.rows.items():
            for pol, seeds in pols.items():
                for seed, row in seeds.items():
                    self.add(inst, pol, seed, row)
        self.sources += [s for s in other.sources if s not in self.sources]

    def missing(self, instance: str, policies: Iterable[str], seeds: Iterable[int]) -> list[tuple[str, str, int]]:
        """``(instance, policy, seed)`` jobs with no row."""
        return [(instance, p, s) for p in policies for s in seeds if self.get(instance, p, s) is None]

    def outcomes(self, instance: str, policy: str, seeds: Iterable[int]) -> dict[int, float]:
        """seed -> outcome of the seeds present."""
        return {s: r["outcome"] for s in seeds if (r := self.get(instance, policy, s)) is not None}

    def seeds(self) -> list[int]:
        """Every seed any row has."""
        return sorted({s for pols in self.rows.values() for seeds in pols.values() for s in seeds})

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "set": self.set_name, "version": self.version,
                "outcome_version": self.outcome_version, "env_kwargs": self.env_kwargs, "seeds": self.seeds(),
                "sources": self.sources,
                "rows": {i: {p: {str(s): r for s, r in sorted(ss.items())} for p, ss in ps.items()}
                         for i, ps in self.rows.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaselineRows:
        if d.get("format") != FORMAT:
            raise ValueError(f"unknown baseline rows format {d.get('format')!r}")
        rows = {i: {p: {int(s): dict(r) for s, r in ss.items()} for p, ss in ps.items()} for i, ps in d["rows"].items()}
        return cls(d["set"], int(d["version"]), int(d["outcome_version"]), dict(d.get("env_kwargs") or {}), rows,
                   list(d.get("sources", [])))

    def write(self, path: str | Path) -> Path:
        """Write atomically (temp file beside ``path``, then rename)."""
        from unlearn_gym.checkpoints import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, self.to_json().encode())
        return path

    def to_json(self) -> str:
        """JSON text with one line per (instance, policy): small and diffable."""
        d = self.to_dict()
        rows = d.pop("rows")
        head = json.dumps(d, indent=1, ensure_ascii=False)[:-2]  # without the closing "\n}"
        dumps = lambda x: json.dumps(x, ensure_ascii=False)  # noqa: E731
        blocks = [f" {dumps(inst)}: {{\n" + ",\n".join(f"  {dumps(p)}: {dumps(ss)}" for p, ss in pols.items()) + "\n }"
                  for inst, pols in rows.items()]
        body = "{\n" + ",\n".join(blocks) + "\n }" if blocks else "{}"
        return head + f',\n "rows": {body}\n}}\n'


def shipped_dir() -> Path:
    """The package's asset folder (where shipped baseline rows live)."""
    return Path(__file__).resolve().parent / "assets"


def cache_dir(directory: str | Path | None = None) -> Path:
    """``directory``, else ``$UNLEARN_GYM_HOME/baselines`` (default ``~/.cache/unlearn-gym/baselines``)."""
    if directory is not None:
        return Path(directory)
    from unlearn_gym.data.sources import home_dir

    return home_dir() / "baselines"


def _read(path: Path, want: BaselineRows) -> BaselineRows | None:
    if not path.is_file():
        return None
    try:
        got = BaselineRows.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"ignoring unreadable baseline rows {path} ({e}); they will be recomputed", stacklevel=3)
        return None
    if not want.same_key(got):
        warnings.warn(f"ignoring {path}: its key does not match its name", stacklevel=3)
        return None
    return got


def load_rows(set_name: str, env_kwargs: dict[str, Any] | None = None,
              directory: str | Path | None = None) -> BaselineRows:
    """The shipped and the cached rows of a set's current version (empty when there are none).

    :param set_name: instance set.
    :param env_kwargs: env constructor arguments (part of the key).
    :param directory: cache folder (default :func:`cache_dir`).
    """
    rows = BaselineRows.current(set_name, env_kwargs)
    for path in (shipped_dir() / rows.file_name, cache_dir(directory) / rows.file_name):
        got = _read(path, rows)
        if got is not None:
            rows.merge(got)
    return rows


def compute_rows(rows: BaselineRows, jobs: Sequence[tuple[str, str, int]], *, progress: bool = True,
                 directory: str | Path | None = None, write: bool = True) -> int:
    """Play the missing ``(instance, policy name, seed)`` episodes, add them to ``rows`` and the cache file.

    :param rows: the table to complete.
    :param jobs: episodes to play (policies by :func:`~unlearn_gym.policies.baselines` name).
    :param progress: a tqdm bar.
    :param directory: cache folder (default :func:`cache_dir`).
    :param write: add the new rows to the cache file (read again just before writing, so rows another
        process added meanwhile are kept).
    :returns: the number of episodes played.
    """
    from unlearn_gym.episodes import as_actor, make_instance_env, run_episode

    jobs = [j for j in jobs if rows.get(*j) is None]
    if not jobs:
        return 0
    from tqdm.auto import tqdm

    new = BaselineRows(rows.set_name, rows.version, rows.outcome_version, dict(rows.env_kwargs))
    envs: dict[str, Any] = {}
    bar = tqdm(jobs, desc=f"baseline rows ({rows.set_name} v{rows.version})", unit="episode", disable=not progress)
    for inst, name, seed in bar:
        if inst not in envs:
            envs[inst] = make_instance_env(inst, rows.env_kwargs)
        env = envs[inst]
        policy = baseline_policy(inst, name)
        row = run_episode(env, as_actor(policy, int(env.action_space.shape[0]), name), seed)
        if row["outcome_version"] != rows.outcome_version:
            raise RuntimeError(f"the env scored outcome version {row['outcome_version']}, the rows are keyed by"
                               f" {rows.outcome_version}")
        new.add(inst, name, seed, row)
    for env in envs.values():
        env.close()
    new.sources.append(f"computed by unlearn_gym.baseline_rows.compute_rows: {len(jobs)} episodes")
    rows.merge(new)
    if write:
        path = cache_dir(directory) / rows.file_name
        cached = _read(path, new) or BaselineRows(new.set_name, new.version, new.outcome_version, dict(new.env_kwargs))
        cached.merge(new)
        cached.write(path)
    return len(jobs)


def tuned_roles(instance: str) -> dict[str, str]:
    """Role -> tuned policy name for an instance whose set has committed tuned parameters, else ``{}``.

    :param instance: instance name.
    """
    from unlearn_gym.envs.instances import instance_info
    from unlearn_gym.tuned import tuned_path

    return dict(TUNED_ROLES) if tuned_path(instance_info(instance)["set"]).is_file() else {}


def baseline_policy(instance: str, name: str) -> Any:
    """A baseline policy by name: one of :func:`~unlearn_gym.policies.baselines` or a tuned one.

    :param instance: instance name.
    :param name: policy name.
    """
    pols = baselines(instance)
    if name in pols:
        return pols[name]
    if name in TUNED_ROLES.values():
        from unlearn_gym.envs.instances import instance_info
        from unlearn_gym.tuned import load_tuned

        return load_tuned(instance_info(instance)["set"])[name]
    raise KeyError(f"no baseline {name!r} for {instance}")


def is_constant(name: str, instance: str) -> bool:
    """Whether baseline ``name`` (of the instance's action space) is a constant."""
    return isinstance(baselines(instance)[name], ConstantPolicy)


def select(rows: BaselineRows, instance: str, seeds: Sequence[int] = SELECTION_SEEDS) -> dict[str, str]:
    """The default constant, the best constant and the best schedule of an instance (by name), and the
    tuned baselines where its set has them (:func:`tuned_roles`).

    Best = the highest mean outcome over ``seeds`` (ties: the first in :func:`baselines` order, as
    ``benchmarks/headroom.py`` picks). Every baseline needs a row on every seed: complete ``rows``
    with :func:`compute_rows` first.

    :param rows: the set's rows.
    :param instance: instance name.
    :param seeds: the selection seeds.
    """
    pols = baselines(instance)
    means = {}
    for name in pols:
        got = rows.outcomes(instance, name, seeds)
        if len(got) != len(seeds):
            raise ValueError(f"no rows of {name!r} on {instance} for seeds {sorted(set(seeds) - set(got))}")
        means[name] = float(np.mean(list(got.values())))
    consts = [n for n, p in pols.items() if isinstance(p, ConstantPolicy)]
    scheds = [n for n, p in pols.items() if not isinstance(p, ConstantPolicy)]
    from unlearn_gym.envs.instances import get_instance

    return {"default constant": DEFAULT_CONSTANT[get_instance(instance).action],
            "best constant": max(consts, key=means.__getitem__),
            "best schedule": max(scheds, key=means.__getitem__), **tuned_roles(instance)}


def rows_from_headroom(report: dict[str, Any], source: str) -> list[BaselineRows]:
    """Baseline rows from a ``benchmarks/headroom.py --json`` report (one table per set and version in it).

    Only instances whose recorded set version is the current one are taken; the outcome version is
    that of the rows' ``reference`` scoring, i.e. the current one when the report was made with it
    (``docs/headroom/*.json`` record score version 2).

    :param report: the parsed JSON.
    :param source: a line saying where it came from (kept in ``sources``).
    """
    from unlearn_gym.envs.instances import INSTANCE_SETS

    out: dict[str, BaselineRows] = {}
    for inst, entry in report["instances"].items():
        set_name = entry.get("set")
        if set_name not in INSTANCE_SETS or entry.get("version") != INSTANCE_SETS[set_name].version:
            continue
        rows = out.setdefault(set_name, BaselineRows.current(set_name))
        for r in entry["rows"]:
            rows.add(inst, r["policy"], int(r["seed"]), r)
    for rows in out.values():
        rows.sources.append(source)
    return list(out.values())
