"""unlearn_gym.evaluate_policy: user policies against the baselines, paired by seed, with cached baseline rows.

Episodes run on the VAE's 10-step instance with a small outcome score (fast); the shipped rows of
``default:test`` are checked without playing an episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import unlearn_gym
from unlearn_gym import baseline_rows, episodes
from unlearn_gym.baseline_rows import (
    EVAL_SEED0,
    ROLES,
    SELECTION_SEEDS,
    BaselineRows,
    eval_seeds,
    load_rows,
    select,
)
from unlearn_gym.episodes import as_actor
from unlearn_gym.policies import DEFAULT_CONSTANT, ConstantPolicy, CosineSchedule, baselines
from unlearn_gym.policy_eval import load_object

DOCS = Path(__file__).resolve().parent.parent / "docs" / "headroom"
INSTANCE = "vae-micro-scale-b16-h10"
SMALL = {"outcome_config": {"n_forget": 32, "n_per_retain": 4}}
KW = {"instances": [INSTANCE], "seeds": [1, 2], "selection_seeds": [0], "env_kwargs": SMALL, "progress": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One baseline cache for the module: the baselines are played once."""
    return tmp_path_factory.mktemp("baselines")


@pytest.fixture
def count_episodes(monkeypatch):
    """Counts every episode played (the user's and the baselines')."""
    played = []
    real = episodes.run_episode

    def counting(env, actor, seed):
        played.append((actor.name, seed))
        return real(env, actor, seed)

    monkeypatch.setattr(episodes, "run_episode", counting)
    return played


# ---- the baselines as objects ---------------------------------------------------------------------
@pytest.mark.parametrize("set_name", ["default", "lambda", "vae"])
def test_baselines_are_the_committed_headroom_policies(set_name):
    report = json.loads((DOCS / f"{set_name}.json").read_text())
    for inst, entry in report["instances"].items():
        pols = baselines(inst)
        assert set(pols) == {r["policy"] for r in entry["rows"]}
        assert list(pols) == list(baselines(entry["instance"]["action"]))
        assert DEFAULT_CONSTANT[entry["instance"]["action"]] in pols
        assert all(n.startswith("const") == isinstance(p, ConstantPolicy) for n, p in pols.items())
    assert baselines(f"{set_name}:test").keys() == pols.keys()
    assert baselines("default")["const scale +0.0"] is not baselines("default")["const scale +0.0"]  # fresh objects


@pytest.mark.parametrize("set_name", ["default", "lambda", "vae"])
def test_shipped_rows_choose_the_best_as_headroom_does(set_name):
    rows = load_rows(set_name, directory="/nonexistent")  # shipped only
    report = json.loads((DOCS / f"{set_name}.json").read_text())
    for inst, entry in report["instances"].items():
        chosen = select(rows, inst, SELECTION_SEEDS)
        assert chosen["best constant"] == entry["best_constant"]
        assert chosen["best schedule"] == entry["best_schedule"]


def test_shipped_default_test_rows_cover_the_default_seeds():
    """evaluate_policy(pol) on default:test with seeds=10 plays no baseline episode."""
    assert eval_seeds(10) == list(range(EVAL_SEED0, EVAL_SEED0 + 10))
    rows = load_rows("default", directory="/nonexistent")
    for inst in ("micro-heavy-scale-b16-h30", "micro-heavy-scale-b8-h50-lr1e-4"):
        chosen = select(rows, inst, SELECTION_SEEDS)
        assert rows.missing(inst, chosen.values(), eval_seeds(10)) == []
        assert not set(eval_seeds(10)) & set(SELECTION_SEEDS)


def test_rows_round_trip_and_key(tmp_path):
    rows = BaselineRows.current("vae", SMALL)
    assert rows.file_name.startswith("baselines-vae-v1-outcome2-kw")
    rows.add(INSTANCE, "const scale +0.0", 3, {"outcome": 0.5, "forget": 0.1, "retain_mean": 0.8, "steps": 10, "x": 1})
    path = rows.write(tmp_path / rows.file_name)
    back = BaselineRows.from_dict(json.loads(path.read_text()))
    assert back.rows == rows.rows and back.same_key(rows) and back.seeds() == [3]
    assert not back.same_key(BaselineRows.current("vae"))
    (tmp_path / rows.file_name).write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_rows("vae", SMALL, tmp_path).rows == {}


def test_eval_seeds():
    assert eval_seeds(2) == [100, 101]
    assert eval_seeds([5, 3, 5]) == [5, 3]
    with pytest.raises(ValueError):
        eval_seeds(0)


# ---- adapters ---------------------------------------------------------------------------------
def test_recurrent_model_state_is_carried():
    calls = []

    class Recurrent:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            calls.append((obs.shape, state, episode_start.tolist(), deterministic))
            return np.zeros((1, 2), dtype=np.float32), (0 if state is None else state + 1)

    actor = as_actor(Recurrent(), 2)
    obs = np.zeros(6, dtype=np.float32)
    for _ in range(2):
        actor.reset(0)
        assert actor.act(obs).shape == (2,)
        actor.act(obs)
    assert calls == [((1, 6), None, [True], True), ((1, 6), 0, [False], True)] * 2
    assert actor.name == "Recurrent"


def test_plain_callables_one_or_two_arguments():
    obs = np.zeros(6, dtype=np.float32)
    assert as_actor(lambda o: [0.5, 0.5], 2).act(obs) == [0.5, 0.5]
    assert as_actor(lambda o, dim: np.full(dim, 0.25), 2).act(obs).tolist() == [0.25, 0.25]
    with pytest.raises(TypeError, match="cannot evaluate"):
        as_actor(42, 2)


# ---- evaluate_policy ------------------------------------------------------------------------------
def test_default_constant_is_level_with_itself_and_cache_is_written(cache, count_episodes):
    res = unlearn_gym.evaluate_policy(ConstantPolicy([0.0, 0.0], dim=2), cache_dir=cache, **KW)
    assert res.baselines[INSTANCE]["default constant"] == "const scale +0.0"
    for inst in (INSTANCE, "all"):
        d = res.diff("default constant", inst)
        assert (d.n, d.mean) == (2, 0.0)
    assert res.summary()[0]["default constant"]["verdict"] == "level"
    # the policy's 2 episodes, every baseline on selection seed 0, the chosen ones on seeds 1-2
    chosen = set(res.baselines[INSTANCE].values())
    assert len(count_episodes) == 2 + len(baselines(INSTANCE)) + 2 * len(chosen)
    files = list(cache.glob("baselines-vae-v1-outcome2-kw*.json"))
    assert len(files) == 1
    stored = BaselineRows.from_dict(json.loads(files[0].read_text()))
    assert stored.missing(INSTANCE, chosen, [1, 2]) == []
    md = res.to_markdown()
    assert "| instance | episodes | policy outcome |" in md and f"`{INSTANCE}`" in md and "level" in md


def test_callable_reuses_the_cache(cache, count_episodes):
    unlearn_gym.evaluate_policy(ConstantPolicy([0.0, 0.0], dim=2), cache_dir=cache, **KW)  # fills it if alone
    count_episodes.clear()

    def zero(obs):
        return np.zeros(2, dtype=np.float32)

    res = unlearn_gym.evaluate_policy(zero, cache_dir=cache, **KW)
    assert [name for name, _ in count_episodes] == ["zero", "zero"]  # no baseline episode
    assert res.name == "zero" and res.diff("default constant").mean == 0.0  # action 0 = the default constant


def test_sb3_model_and_outputs(cache, tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from unlearn_gym.episodes import make_instance_env

    env = make_instance_env(INSTANCE, SMALL)
    model = PPO("MlpPolicy", env, seed=0, device="cpu")
    res = unlearn_gym.evaluate_policy(model, cache_dir=cache, **{**KW, "seeds": [1]})
    assert res.name == "PPO" and set(res.rows[INSTANCE]) == {1}
    assert res.baseline_outcomes[INSTANCE].keys() == set(ROLES)
    d = res.to_dict()
    json.dumps(d)
    assert d["summary"][-1]["instance"] == "all"
    pytest.importorskip("matplotlib")
    paths = res.write(tmp_path / "out")
    assert {p.name for p in paths.values()} == {"evaluation.md", "evaluation.json", "evaluation.png"}
    assert paths["png"].stat().st_size > 1000


def test_overlapping_seeds_are_noted(cache):
    res = unlearn_gym.evaluate_policy(CosineSchedule([0.0, 1.0], [0.0, -1.0], dim=2), cache_dir=cache,
                                      **{**KW, "seeds": [0]})
    assert any("selection seeds" in n for n in res.notes)


def test_mismatched_model_is_refused(cache):
    class OneD:
        action_space = type("S", (), {"shape": (1,)})()

        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.zeros((1, 1)), None

    with pytest.raises(ValueError, match="action_space"):
        unlearn_gym.evaluate_policy(OneD(), cache_dir=cache, **KW)


# ---- MODULE:OBJECT and the CLI -------------------------------------------------------------------
def test_load_object(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("import numpy as np\n"
                 "from unlearn_gym.policies import ConstantPolicy\n"
                 "def policy(obs):\n    return np.zeros(2)\n"
                 "def make():\n    return ConstantPolicy([0.0, 0.5], dim=2)\n"
                 "class Mine:\n    def __call__(self, obs):\n        return np.zeros(2)\n")
    assert load_object(f"{f}:policy").__name__ == "policy"
    assert load_object(f"{f}:make").value == [0.0, 0.5]
    assert type(load_object(f"{f}:Mine")).__name__ == "Mine"
    assert isinstance(load_object("unlearn_gym.policies:ConstantPolicy"), ConstantPolicy)
    for bad, err in (("nocolon", ValueError), ("no_such_module_xyz:f", ValueError), (f"{f}:missing", ValueError),
                     (f"{tmp_path}/absent.py:f", FileNotFoundError)):
        with pytest.raises(err):
            load_object(bad)


def test_cli_prints_the_table(cache, tmp_path, capsys):
    from unlearn_gym.cli import main

    f = tmp_path / "pol.py"
    f.write_text("import numpy as np\ndef zero(obs):\n    return np.zeros(2)\n")
    rc = main(["evaluate-policy", f"{f}:zero", "--instances", INSTANCE, "--seeds", "2", "--seed0", "1",
               "--selection-seeds", "0", "--env-kwargs", json.dumps(SMALL), "--cache-dir", str(cache), "--quiet",
               "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| instance | episodes | policy outcome |" in out and "**zero**" in out and "level" in out
    assert (tmp_path / "out" / "evaluation.md").is_file()
    assert main(["evaluate-policy", "nocolon"]) == 2
    assert "MODULE:OBJECT" in capsys.readouterr().err


def test_lazy_export():
    import subprocess
    import sys

    code = "import sys, unlearn_gym; assert 'unlearn_gym.policy_eval' not in sys.modules; unlearn_gym.evaluate_policy"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert baseline_rows.SELECTION_SEEDS == (0, 1, 2, 3, 4)


def test_a_shipped_row_replays():
    """The shipped rows still pair with the env (one episode: the default constant, seed 100)."""
    from unlearn_gym.episodes import make_instance_env, run_episode

    inst = "micro-heavy-scale-b16-h30"
    env = make_instance_env(inst)
    got = run_episode(env, as_actor(baselines(inst)["const scale +0.0"], 2), EVAL_SEED0)["outcome"]
    assert got == load_rows("default", directory="/nonexistent").get(inst, "const scale +0.0", EVAL_SEED0)["outcome"]


def test_the_tuned_baselines_are_roles_where_a_set_has_them(tmp_path):
    from unlearn_gym.baseline_rows import TUNED_ROLES, baseline_policy, tuned_roles
    from unlearn_gym.episodes import make_instance_env, run_episode
    from unlearn_gym.policy_eval import evaluate_policy

    inst = "micro-heavy-scale-b16-h30"
    assert tuned_roles(inst) == TUNED_ROLES and tuned_roles(INSTANCE) == {}  # the vae set has none
    # a shipped tuned row replays
    env = make_instance_env(inst)
    pol = baseline_policy(inst, "tuned-constant")
    got = run_episode(env, as_actor(pol, 2, "tuned-constant"), EVAL_SEED0)["outcome"]
    assert got == load_rows("default", directory="/nonexistent").get(inst, "tuned-constant", EVAL_SEED0)["outcome"]
    res = evaluate_policy(lambda obs: [0.0, 0.0], instances=[inst], seeds=[EVAL_SEED0], progress=False,
                          cache_dir=tmp_path)
    assert res.roles == [*ROLES, *TUNED_ROLES]
    text = res.to_markdown()
    assert "Δ vs tuned constant" in text and "tuned-feedback" in text
    assert not list(tmp_path.iterdir())  # every baseline row was shipped: nothing computed
