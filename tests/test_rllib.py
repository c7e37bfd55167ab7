"""agents/rllib_train.py: RLlib PPO on a local Ray instance, its final run and outputs (skipped without ray[rllib]).

The run is a few hundred steps of `micro` with 10-step episodes, a small outcome-score sample and
one env runner (about 30 s on 2 CPU cores, most of it Ray's start-up).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray.rllib")
pytest.importorskip("yaml")

from agents.rllib_train import Args, main
from unlearn_gym.rl.config import default_hyperparams_path, read_yaml

SMALL_ENV = ["--env-kwargs", "horizon=10", "--env-kwargs", "reward=outcome",
             "--env-kwargs", "outcome_config={n_forget: 32, n_per_retain: 4, steps: 4}"]
EVAL = ["--eval-samples", "4", "--eval-forget-samples", "8", "--eval-steps", "4"]


def test_defaults_are_the_paper_ppo_hyperparameters():
    hp = read_yaml(default_hyperparams_path("ppo"))["default"]
    a = Args()
    assert (a.gamma, a.gae_lambda, a.clip, a.lr) == (hp["gamma"], hp["gae_lambda"], hp["clip_range"],
                                                      pytest.approx(hp["learning_rate"]))
    assert (a.ent_coef, a.vf_coef, a.grad_clip) == (hp["ent_coef"], hp["vf_coef"], hp["max_grad_norm"])
    assert (a.train_batch, a.minibatch, a.epochs) == (hp["n_steps"], hp["batch_size"], hp["n_epochs"])
    assert hp["policy_kwargs"]["net_arch"] == {"pi": [a.hidden] * 2, "vf": [a.hidden] * 2}
    assert a.env == "SISSUnlearnMicro-v0" and a.num_env_runners == 2


def test_rllib_ppo_trains_and_saves_the_final_run(tmp_path):
    out = tmp_path / "run"
    rc = main(["--timesteps", "200", "--num-env-runners", "1", "--train-batch", "100", "--minibatch", "50",
               "--epochs", "2", "--seed", "0", "--eval-seed", "3", "--out", str(out), "--no-verbose",
               *SMALL_ENV, *EVAL])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["timesteps"] >= 200 and result["train_seconds"] > 0
    assert result["num_env_runners"] == 1 and len(result["iterations"]) == 2
    final = result["final"]
    assert final["seed"] == 3 and final["steps"] == 10 and not final["diverged"]
    assert len(final["lambdas"]) == 10 and all(0.05 <= lam <= 0.95 for lam in final["lambdas"])
    assert isinstance(final["paper_return"], float)
    assert final["outcome_score"] is not None and -1.0 <= final["outcome"] <= 1.0
    for name in ("model.pt", "model.json", "log.csv", "trajectory.png", "metrics.json"):
        assert (out / "final" / name).is_file(), name
    assert json.loads((out / "final" / "model.json").read_text())["kind"] == "unlearned"
    assert (out / "checkpoint" / "learner_group" / "learner" / "rl_module" / "default_policy").is_dir()
    assert json.loads((out / "config.json").read_text())["env_kwargs"]["horizon"] == 10


def test_unknown_env_argument_is_an_error(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--env-kwargs", "horizn=10"]) == 2
    assert "horizn" in capsys.readouterr().err
