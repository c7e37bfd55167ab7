"""Tuned baselines: the policy families, the Optuna search at toy size, the committed parameters."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from unlearn_gym.envs.encoding import OBS_NAMES, PROGRESS_INDEX
from unlearn_gym.policies import Policy, rollout
from unlearn_gym.tuned import (
    ENTRY_NAMES,
    SPACES,
    FeedbackController,
    TunedConstant,
    TunedSchedule,
    load_tuned,
    make_policy,
    tuned_path,
)

optuna = pytest.importorskip("optuna")

MICRO = "unlearn_gym:SISSUnlearnMicro-v0"
SMALL = {"n_forget": 8, "n_per_retain": 2, "steps": 2}


def _toy_env(name: str) -> gym.Env:
    return gym.make(MICRO, action="lambda+scale", horizon=3, batch_size=4, data_ratio=0.5, outcome_config=SMALL)


def _obs(progress: float, gr: float = -0.5, lf: float = -1.5) -> np.ndarray:
    o = np.zeros(len(OBS_NAMES), dtype=np.float32)
    o[OBS_NAMES.index("log10_grad_norm_r")] = gr
    o[OBS_NAMES.index("log10_L_f")] = lf
    o[PROGRESS_INDEX] = progress
    return o


def _mid(family: str) -> dict[str, float]:
    return {k: 0.5 * (lo + hi) for k, (lo, hi) in SPACES[family].items()}


def test_search_runs_and_returns_params():
    from unlearn_gym.tuning import EpisodeRunner, search

    runner = EpisodeRunner(make_env=_toy_env)
    res = search("schedule", ["toy"], seeds=[1000], trials=2, select_seeds=[1100], top_k=1, runner=runner)
    assert set(res["params"]) == set(SPACES["schedule"])
    assert all(SPACES["schedule"][k][0] <= v <= SPACES["schedule"][k][1] for k, v in res["params"].items())
    assert res["budget"] == {"trials": 2, "episodes_per_trial": 1, "search_episodes": 2, "top_k": 1,
                             "selection_episodes": 1}
    assert runner.episodes == 3 and len(res["trials"]) == 2
    assert -1.0 <= res["value"] <= 1.0
    with pytest.raises(ValueError, match="unknown family"):
        search("nope", ["toy"], seeds=[0], trials=1, runner=runner)


def test_search_enqueue_and_custom_family():
    from unlearn_gym.tuning import EpisodeRunner, search

    runner = EpisodeRunner(make_env=_toy_env)
    res = search("constant", ["toy"], seeds=[1000], trials=2, runner=runner, enqueue=[{"lam": 0.25, "rho": -0.5}])
    assert res["trials"][0]["params"] == {"lam": 0.25, "rho": -0.5}
    made = []

    def factory(p):
        made.append(p)
        return TunedConstant(lam=p["a"], rho=-p["a"])

    res = search("mine", ["toy"], seeds=[1000], trials=2, runner=runner, space={"a": (-0.5, 0.5)}, factory=factory)
    assert set(res["params"]) == {"a"} and len(made) == 2 and -0.5 <= res["params"]["a"] <= 0.5
    with pytest.raises(ValueError, match="together"):
        search("mine", ["toy"], seeds=[1000], trials=1, runner=runner, space={"a": (0.0, 1.0)})


@pytest.mark.parametrize("family", sorted(SPACES))
def test_policies_valid_and_deterministic(family):
    env = _toy_env("toy")
    pol = make_policy(family, _mid(family))
    assert isinstance(pol, Policy) and pol.name == ENTRY_NAMES[family]
    a = rollout(env, pol, seed=3)
    b = rollout(env, make_policy(family, _mid(family)), seed=3)
    assert a["lambdas"] == b["lambdas"] and a["scales"] == b["scales"]
    for obs in (_obs(0.0), _obs(0.5), _obs(1.0)):
        act = pol(obs, 2)
        assert act.shape == (2,) and act.dtype == np.float32 and env.action_space.contains(act)
    batch, _ = pol.predict(np.stack([_obs(0.0), _obs(0.5)]))
    assert batch.shape == (2, 2)
    with pytest.raises(ValueError, match="unknown parameter"):
        make_policy(family, {"nope": 0.0})


def test_schedule_shape():
    pol = TunedSchedule(lam_start=-1, lam_end=1, rho_start=-1, rho_mid=1, rho_end=0, knee=0.25)
    np.testing.assert_allclose(pol.action(0.0, 2), [-1, -1])
    np.testing.assert_allclose(pol.action(0.25, 2), [-0.5, 1])
    np.testing.assert_allclose(pol.action(1.0, 2), [1, 0])
    np.testing.assert_allclose(TunedConstant(0.2, -0.3).action(0.7, 2), [0.2, -0.3])
    with pytest.raises(ValueError, match="2 action components"):
        TunedConstant().action(0.0, 1)


def test_feedback_reacts_to_observation():
    def run(gr_late: float) -> np.ndarray:
        pol = FeedbackController(lam=0.0, rho0=0.0, gain=0.1, tol=0.3, f_target=1.0)
        pol(_obs(0.0), 2)
        pol(_obs(0.1), 2)
        pol(_obs(0.2), 2)  # reference window (2 steps)
        return pol(_obs(0.3, gr=gr_late), 2)

    calm, damaged = run(-0.5), run(+1.5)
    assert calm[1] == pytest.approx(0.1)       # retain gradient steady: ρ rises by gain
    assert damaged[1] == pytest.approx(-0.2)   # retain gradient rose past tol: ρ cut by 2 gain
    # memory restarts at a reset observation (progress 0)
    pol = FeedbackController(rho0=-0.4, gain=0.2)
    for p in (0.0, 0.1, 0.2, 0.3, 0.4):
        pol(_obs(p), 2)
    assert pol(_obs(0.0), 2)[1] == pytest.approx(-0.4)


def test_load_committed_parameters(tmp_path):
    path = tuned_path("default")
    if path.is_file():
        pols = load_tuned("default")
        assert {"tuned-constant", "tuned-schedule", "tuned-feedback"} <= set(pols)
        assert all(isinstance(p, Policy) for p in pols.values())
        assert any(k.startswith("oracle-constant:") for k in pols)
    rec = {"families": {f: {"params": _mid(f)} for f in SPACES},
           "per_instance_constant": {"x": {"params": {"lam": 0.1, "rho": -0.2}}}}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(rec))
    pols = load_tuned("default", f)
    assert sorted(pols) == ["oracle-constant:x", "tuned-constant", "tuned-feedback", "tuned-schedule"]
    np.testing.assert_allclose(pols["oracle-constant:x"].action(0.5, 2), [0.1, -0.2])
    with pytest.raises(FileNotFoundError, match="tuned_baselines"):
        load_tuned("default", tmp_path / "missing.json")


def test_cli_tune(tmp_path, capsys):
    from unlearn_gym.cli import main

    out = tmp_path / "tune.json"
    rc = main(["tune", "--instance", "micro-heavy-scale-b64-h20", "--family", "constant", "--trials", "1",
               "--seeds", "1000", "--select-seeds", "--quiet", "--out", str(out),
               "--env-kwargs", json.dumps({"outcome_config": SMALL})])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert set(rec["params"]) == {"lam", "rho"} and rec["budget"]["search_episodes"] == 1
    assert rec["command"].startswith("unlearn-gym tune")
    assert "constant on micro-heavy-scale-b64-h20" in capsys.readouterr().out


def test_benchmark_entries_serve_their_set_only(tmp_path):
    from unlearn_gym.benchmark.cells import make_policy as cell_policy
    from unlearn_gym.benchmark.entries import DEFAULT_ENTRIES
    from unlearn_gym.benchmark.runner import BenchmarkConfig, build_cells

    tuned = {e.name: e for e in DEFAULT_ENTRIES if e.target == "tuned"}
    assert sorted(tuned) == ["tuned-constant", "tuned-feedback", "tuned-schedule"]
    committed = load_tuned("default")
    for name, e in tuned.items():
        pol = cell_policy(e)
        assert type(pol) is type(committed[name]) and pol == committed[name]
    cfg = BenchmarkConfig(seeds=1, methods=["tuned-*"], pareto=False, workers=1, out=str(tmp_path),
                          instances=["micro-heavy-scale-b16-h30", "micro-heavy-lambda-b64-h30"])
    cells, skipped = build_cells(cfg)
    assert {c.entry.name for c in cells} == set(tuned)
    assert {c.instance.name for c in cells} == {"micro-heavy-scale-b16-h30"}
    assert {s["instance"] for s in skipped} == {"micro-heavy-lambda-b64-h30"} and len(skipped) == 3


@pytest.mark.slow  # 300 s on the shared 2-core CPU (two trainings running) for three 30-step episodes
def test_search_through_ray_tune(tmp_path):
    pytest.importorskip("ray.tune")
    from unlearn_gym.tuning import search

    inst = "micro-heavy-scale-b8-h30"
    res = search("constant", [inst], seeds=[1000], trials=2, select_seeds=[1100], top_k=1, ray=True, workers=1,
                 env_kwargs={"outcome_config": SMALL})
    assert res["sampler"]["via"] == "ray.tune OptunaSearch" and len(res["trials"]) == 2
    for t in res["trials"]:
        assert all(SPACES["constant"][k][0] <= v <= SPACES["constant"][k][1] for k, v in t["params"].items())
        assert t["rows"][0]["instance"] == inst and t["rows"][0]["seed"] == 1000 and -1 <= t["value"] <= 1
    # a trial's value is the episode the policy plays here, with the same seed (common random numbers)
    from unlearn_gym.tuning import EpisodeRunner

    t = res["trials"][0]
    again = EpisodeRunner({"outcome_config": SMALL}).run(make_policy("constant", t["params"]), inst, 1000)
    assert again["outcome"] == t["rows"][0]["outcome"]
    assert res["budget"]["search_episodes"] == 2 and res["budget"]["selection_episodes"] == 1
