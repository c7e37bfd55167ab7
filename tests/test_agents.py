"""unlearn_gym.rl and agents/train.py: hyperparameter files, training in both protocols, every output, reloading.

Training runs use `micro` with a short horizon, a small outcome-score sample and a few hundred steps;
each algorithm's run is shared by the tests that read its outputs (module-scoped fixtures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")
pytest.importorskip("yaml")

from unlearn_gym.rl.config import (
    ALGOS,
    HyperparameterError,
    check_env_kwargs,
    hyperparams_dir,
    load_hyperparams,
    model_kwargs,
)
from unlearn_gym.rl.evaluation import replay
from unlearn_gym.rl.train import Args, eval_targets, train

ENV = "SISSUnlearnMicro-v0"
INSTANCE = "micro-heavy-scale-b8-h30"
#: a short, cheap env: 10-step episodes, outcome reward on a small fixed-noise sample
SMALL_ENV = ["env_kwargs.horizon=10", "env_kwargs.reward=outcome",
             "env_kwargs.outcome_config={n_forget: 32, n_per_retain: 4, steps: 4}"]
EVAL = {"eval_samples": 4, "eval_forget_samples": 8, "eval_steps": 4, "progress_bar": False}


# ---------------------------------------------------------------------------------------------
# hyperparameter files

@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("protocol", ["episodic", "online"])
def test_shipped_files_load_with_paper_defaults(algo, protocol):
    hp = load_hyperparams(algo, f"unlearn_gym:{ENV}", protocol=protocol)
    for key in ("policy", "policy_kwargs", "n_timesteps", "env_kwargs", "normalize", "n_envs"):
        assert key in hp
    assert hp["gamma"] == 0.99
    assert hp["learning_rate"] == pytest.approx(3e-4)
    assert hp["policy_kwargs"]["activation_fn"] == "tanh"
    arch = hp["policy_kwargs"]["net_arch"]
    assert arch in ([64, 64], {"pi": [64, 64], "vf": [64, 64]})
    kw = model_kwargs(hp)
    assert kw["policy_kwargs"]["activation_fn"].__name__ == "Tanh"
    assert not {"policy", "n_timesteps", "env_kwargs", "n_envs", "normalize"} & set(kw)


def test_ppo_paper_defaults_and_online_window():
    ep = load_hyperparams("ppo", ENV, protocol="episodic")
    on = load_hyperparams("ppo", ENV, protocol="online")
    assert (ep["gae_lambda"], ep["clip_range"]) == (0.95, 0.2)
    assert 0 < ep["ent_coef"] <= 0.01
    assert on["n_steps"] == 256


def test_set_overrides_nested_keys_and_yaml_numbers():
    hp = load_hyperparams("ppo", ENV, overrides=["gamma=0.9", "learning_rate=1e-3", "env_kwargs.beta=0.2",
                                                  "policy_kwargs.net_arch=[32, 32]", "learning_rate=lin_3e-4"])
    assert hp["gamma"] == 0.9 and hp["env_kwargs"] == {"beta": 0.2}
    assert hp["policy_kwargs"]["net_arch"] == [32, 32] and hp["policy_kwargs"]["activation_fn"] == "tanh"
    lr = model_kwargs(hp)["learning_rate"]
    assert lr(1.0) == pytest.approx(3e-4) and lr(0.5) == pytest.approx(1.5e-4)


@pytest.mark.parametrize("override, named", [
    ("gamm=0.9", "'gamm'"),
    ("policy_kwargs.net_arc=[8]", "'policy_kwargs.net_arc'"),
    ("normalize={norm_obs: true, bogus: 1}", "'normalize.bogus'"),
    ("seed=3", "'seed'"),
    ("replay_buffer_class=x", "'replay_buffer_class'"),
])
def test_unknown_or_reserved_keys_are_named(override, named):
    with pytest.raises(HyperparameterError, match=named):
        load_hyperparams("ppo", ENV, overrides=[override])


def test_unknown_key_in_a_file_is_named(tmp_path):
    f = tmp_path / "ppo.yml"
    f.write_text("default:\n  policy: MlpPolicy\n  n_steps: 64\n  online:\n    n_stepz: 256\n")
    with pytest.raises(HyperparameterError, match=r"'n_stepz'.*ppo.yml \[default\]\.online"):
        load_hyperparams("ppo", ENV, f)
    f.write_text(f"{ENV}:\n  learning_rat: 0.1\n")
    with pytest.raises(HyperparameterError, match="'learning_rat'"):
        load_hyperparams("ppo", ENV, f)
    f.write_text("Other-v0:\n  gamma: 0.9\n")
    with pytest.raises(HyperparameterError, match="no block for 'SISSUnlearnMicro-v0'"):
        load_hyperparams("ppo", ENV, f)
    with pytest.raises(HyperparameterError, match="unknown algorithm 'dqn'"):
        load_hyperparams("dqn", ENV)


def test_env_kwargs_are_checked_against_the_env():
    check_env_kwargs(ENV, {"beta": 0.2, "instances": "default:train"})
    with pytest.raises(ValueError, match="fixes horizon=30"):
        check_env_kwargs(ENV, {"horizon": 10, "instance": INSTANCE})
    with pytest.raises(HyperparameterError, match=r"'env_kwargs\.horizn'"):
        check_env_kwargs(ENV, {"horizn": 10})


def test_cli_reports_an_unknown_key_in_one_line(capsys):
    from unlearn_gym.cli import main

    assert main(["train-agent", "--set", "clip_rang=0.1", "--timesteps", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown hyperparameter 'clip_rang'") and err.count("\n") == 1


def test_eval_targets_train_split_is_judged_on_test_split():
    from unlearn_gym.envs.instances import INSTANCE_SETS

    args = Args(instances="default:train")
    targets = eval_targets(args, {"instances": "default:train", "beta": 0.2})
    assert [n for n, _ in targets] == [i.name for i in INSTANCE_SETS["default"].test]
    assert all(kw == {"beta": 0.2, "instance": n} for n, kw in targets)
    assert eval_targets(Args(instance=INSTANCE), {"instance": INSTANCE}) == [(INSTANCE, {"instance": INSTANCE})]
    assert eval_targets(Args(), {"horizon": 5}) == [("env", {"horizon": 5})]
    names = "micro-heavy-scale-b16-h30,micro-heavy-scale-b8-h30"
    assert [n for n, _ in eval_targets(Args(eval_instances=names), {"instance": INSTANCE})] == names.split(",")


# ---------------------------------------------------------------------------------------------
# training runs

def _run(tmp_path_factory, name: str, **kw) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp(name)
    args = Args(out=str(out), **{**EVAL, **kw})
    return out, train(args, command=f"test {name}")


@pytest.fixture(scope="module")
def ppo_episodic(tmp_path_factory):
    return _run(tmp_path_factory, "ppo-ep", algo="ppo", instance=INSTANCE, timesteps=192, eval_episodes=2,
                set=["n_steps=64", "env_kwargs.outcome_config={n_forget: 32, n_per_retain: 4, steps: 4}"])


@pytest.fixture(scope="module")
def ppo_online(tmp_path_factory):
    return _run(tmp_path_factory, "ppo-on", algo="ppo", protocol="online", timesteps=128,
                set=["n_steps=64", *SMALL_ENV])


@pytest.fixture(scope="module")
def sac_episodic(tmp_path_factory):
    return _run(tmp_path_factory, "sac-ep", algo="sac", timesteps=150, set=["learning_starts=50", *SMALL_ENV])


@pytest.fixture(scope="module")
def sac_online(tmp_path_factory):
    return _run(tmp_path_factory, "sac-on", algo="sac", protocol="online", timesteps=120,
                set=["learning_starts=40", *SMALL_ENV])


def _check_outputs(out: Path, result: dict, *, metrics: bool = True) -> dict:
    from unlearn_gym.checkpoints import load_checkpoint
    from unlearn_gym.pretrained import load_ddpm_file

    for name in ("policy.zip", "config.json", "hyperparams.yml", "result.json", "training.csv", "training.png"):
        assert (out / name).is_file(), name
    assert list((out / "checkpoints").glob("policy_*_steps.zip"))
    assert list((out / "tb").rglob("events.out.tfevents*"))
    (label, target), = result["final"].items()
    final_dir = out / "final"
    for name in ("model.pt", "model.json", "log.csv", "lambda.png", "trajectory.png", "losses.png"):
        assert (final_dir / name).is_file(), name
    assert load_checkpoint(final_dir / "model.pt", "unlearned")["method"].startswith(result["algo"])
    load_ddpm_file(final_dir / "model.pt")  # `unlearn-gym evaluate` can load it
    assert (final_dir / "metrics.json").is_file() == metrics
    final = target["final"]
    assert -1.0 <= final["outcome"] <= 1.0  # the outcome score
    assert len(final["lambdas"]) == final["steps"] > 0
    assert json.loads((out / "result.json").read_text())["final"][label]["final"]["lambdas"] == final["lambdas"]
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == result["algo"] and config["command"].startswith("test ")
    assert config["hyperparams"]["n_timesteps"] <= result["timesteps"]
    return target


def _tb_tags(out: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for f in (out / "tb").rglob("events.out.tfevents*"):
        ea = EventAccumulator(str(f))
        ea.Reload()
        tags |= set(ea.Tags()["scalars"])
    return tags


def test_ppo_episodic_writes_every_output(ppo_episodic):
    out, result = ppo_episodic
    target = _check_outputs(out, result)
    assert set(result["final"]) == {INSTANCE}
    assert len(target["episodes"]) == 2 and [e["seed"] for e in target["episodes"]] == [0, 1]
    assert target["n"] == 2 and "outcome_ci95" in target
    assert target["final"]["steps"] == 30  # the instance's budget
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert "trouser_rate" in json.dumps(metrics)
    tags = _tb_tags(out)
    for tag in ("unlearn/lambda", "unlearn/scale", "unlearn/L_r", "unlearn/L_f", "unlearn/loss",
                "unlearn/grad_norm_r", "unlearn/total_grad_norm", "unlearn/reward_outcome",
                "unlearn/reward_smoothness", "unlearn/outcome", "unlearn/paper_return"):
        assert tag in tags, tag


def test_saved_policy_reproduces_the_final_run(ppo_episodic):
    out, result = ppo_episodic
    final = result["final"][INSTANCE]["final"]
    again = replay(out)
    assert again["lambdas"] == final["lambdas"]
    assert again["scales"] == final["scales"]
    assert again["outcome"]["outcome"] == final["outcome"]


def test_ppo_online_model_is_the_end_of_training(ppo_online):
    out, result = ppo_online
    target = _check_outputs(out, result)
    final = target["final"]
    assert result["timesteps"] == 128 and final["steps"] == 128  # one run: every training step unlearned
    assert json.loads((out / "config.json").read_text())["hyperparams"]["env_kwargs"]["mode"] == "online"
    assert result["training_episodes"] == 128 // 10  # windows of T = 10 steps
    with pytest.raises(ValueError, match="online"):
        replay(out)


def test_sac_episodic(sac_episodic):
    out, result = sac_episodic
    _check_outputs(out, result)
    again = replay(out)
    assert again["lambdas"] == result["final"]["env"]["final"]["lambdas"]


def test_sac_online(sac_online):
    out, result = sac_online
    target = _check_outputs(out, result)
    assert target["final"]["steps"] == 120


@pytest.mark.parametrize("algo, extra", [
    ("tqc", ["learning_starts=40"]),
    ("recurrentppo", ["n_steps=64", "batch_size=32"]),
    ("a2c", ["n_steps=16"]),
])
def test_other_algorithms_train_save_and_reload(tmp_path_factory, algo, extra):
    out, result = _run(tmp_path_factory, algo, algo=algo, timesteps=128, eval_samples=0, set=[*extra, *SMALL_ENV])
    _check_outputs(out, result, metrics=False)
    assert replay(out)["lambdas"] == result["final"]["env"]["final"]["lambdas"]


def test_bad_protocol_settings_are_errors(tmp_path):
    with pytest.raises(ValueError, match="--instance"):
        train(Args(protocol="online", instances="default:train", out=str(tmp_path)))
    with pytest.raises(ValueError, match="n_envs must be 1"):
        train(Args(protocol="online", set=["n_envs=2"], out=str(tmp_path)))
    with pytest.raises(ValueError, match="not both"):
        train(Args(instance=INSTANCE, instances="default:train", out=str(tmp_path)))


def test_training_plot_draws_the_shipped_baselines(tmp_path):
    from unlearn_gym.rl.evaluation import baseline_references, plot_training

    refs = baseline_references({"instance": INSTANCE})  # the shipped rows, seeds 0-4 (docs/headroom.md)
    by_role = {k.split(" (")[0]: v for k, v in refs.items()}
    assert by_role["best constant"] == pytest.approx(0.400, abs=5e-4)
    assert by_role["best schedule"] == pytest.approx(0.703, abs=5e-4)
    assert set(by_role) == {"default constant", "best constant", "best schedule"}
    assert len(baseline_references({"instances": "default:train"})) == 3  # means over the instances
    # no instance, or settings the rows were not played with: no lines (and no episode played)
    assert baseline_references({"horizon": 10}) == {}
    assert baseline_references({"instance": INSTANCE, "outcome_config": {"n_forget": 32}}) == {}
    episodes = [{"timesteps": 30 * i, "outcome": 0.1 * (i % 5), "paper_return": -1.0} for i in range(30)]
    path = plot_training(episodes, tmp_path / "training.png", references=refs)
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kw, match", [
    ({"instance": "no-such-instance"}, "unknown instance 'no-such-instance'"),
    ({"instances": "nosuchset:train"}, "unknown instance set 'nosuchset'"),
    ({"instance": INSTANCE, "set": ["env_kwargs.action=lambda"]}, "fixes action"),
    ({"instance": INSTANCE, "eval_instances": "no-such-instance"}, "unknown instance.*'no-such-instance'"),
])
def test_a_refused_run_writes_nothing(tmp_path, kw, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        train(Args(out=str(out), **kw))
    assert not out.exists()


def test_train_agent_help_names_the_module_entry_point():
    from unlearn_gym.cli import build_parser

    sub = build_parser().subcommands["train-agent"]
    text = sub.format_help()
    assert "python -m agents.train" in text and "episodic" in text and "docs/agents.md" in text
    assert "--instance micro-heavy-scale-b8-h30" in text  # the epilog's example


def test_module_entry_point_help():
    root = Path(__file__).parents[1]
    r = subprocess.run([sys.executable, "-m", "agents.train", "--help"], capture_output=True, text=True, timeout=60,
                       cwd=root)
    assert r.returncode == 0 and "--protocol" in r.stdout and "--instances" in r.stdout


def test_hyperparameter_files_are_package_data():
    assert hyperparams_dir().parent.name == "rl" and hyperparams_dir().parent.parent.name == "unlearn_gym"
    assert {p.stem for p in hyperparams_dir().glob("*.yml")} == set(ALGOS)


def test_library_does_not_import_the_agents_scripts():
    import ast

    root = Path(__file__).parents[1] / "unlearn_gym"
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n == "agents" or n.startswith("agents.") for n in names), f


def test_instance_set_training_is_judged_per_instance(tmp_path_factory):
    names = "micro-heavy-scale-b16-h30,micro-heavy-scale-b64-h20"
    out, result = _run(tmp_path_factory, "ppo-set", algo="ppo", instances=names, timesteps=64, eval_samples=0,
                       set=["n_steps=64", "env_kwargs.outcome_config={n_forget: 32, n_per_retain: 2, steps: 2}"])
    assert list(result["final"]) == names.split(",")
    for name, steps in zip(names.split(","), (30, 20)):
        assert (out / "final" / name / "model.pt").is_file()
        assert result["final"][name]["final"]["steps"] == steps
        assert replay(out, name)["lambdas"] == result["final"][name]["final"]["lambdas"]


def test_a_vae_runs_evaluation_is_judged_against_the_pretrained_vae(tmp_path, load_pretrained_calls):
    """The final evaluation's reference is the run's own θ_0: the VAE for a VAE run (it was the DDPM)."""
    import gymnasium as gym
    import numpy as np

    from unlearn_gym.rl.evaluation import save_unlearned

    calls = load_pretrained_calls
    env = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance="vae-micro-scale-b8-h30",
                   outcome_config={"n_forget": 8, "n_per_retain": 2, "steps": 2})
    env.reset(seed=0)
    rows = []
    for _ in range(2):
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
        rows.append({k: v for k, v in info.items() if isinstance(v, (int, float))})
    save_unlearned(env, rows, tmp_path / "final", name="test", seed=0, eval_samples=2, eval_forget_samples=4,
                   eval_steps=2)
    assert calls and calls[-1]["model"] == "cvae" and calls[-1]["ratio"] == 0.1
