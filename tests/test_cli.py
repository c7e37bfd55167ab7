"""The `unlearn-gym` command line (micro preset, seconds)."""

from __future__ import annotations

import shlex
import sys

import pytest

from unlearn_gym.checkpoints import read_sidecar
from unlearn_gym.cli import main


def test_info(capsys):
    assert main(["info", "--preset", "micro"]) == 0
    out = capsys.readouterr().out
    assert "fashion" in out and "trousers labelled 1" in out and "preset micro" in out


def test_sample_writes_png(tmp_path):
    out = tmp_path / "s.png"
    assert main(["sample", "--preset", "micro", "--per-label", "2", "--steps", "3", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretrain_and_classifier_commands(tmp_path):
    ck = tmp_path / "d.pt"
    argv = ["pretrain", "--preset", "micro", "--steps", "3", "--out", str(ck)]
    assert main(argv) == 0
    assert read_sidecar(ck)["step"] == 3
    assert read_sidecar(ck)["command"] == shlex.join(["unlearn-gym", *argv])  # main's argv, not pytest's
    assert main(["sample", "--checkpoint", str(ck), "--per-label", "1", "--steps", "2",
                 "--out", str(tmp_path / "x.png")]) == 0
    cl = tmp_path / "c.pt"
    assert main(["train-classifier", "--preset", "micro", "--epochs", "1", "--out", str(cl)]) == 0
    assert 0 <= read_sidecar(cl)["metrics"]["test_accuracy"] <= 1


def test_unknown_command_exits():
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_command_recorded_is_the_argv_main_was_called_with(monkeypatch):
    """Sidecars record ``main(argv)``'s arguments; ``main()`` falls back to ``sys.argv``."""
    from unlearn_gym import cli

    seen = []
    monkeypatch.setitem(cli.COMMANDS, "instances", lambda a: seen.append(cli._command(a)) or 0)
    monkeypatch.setattr(sys, "argv", ["pytest", "-x", "tests/test_cli.py"])
    assert main(["instances", "--set", "a b"]) == 0
    monkeypatch.setattr(sys, "argv", ["unlearn-gym", "instances", "--set", "vae"])
    assert main() == 0
    assert seen == ["unlearn-gym instances --set 'a b'", "unlearn-gym instances --set vae"]


def test_version(capsys):
    from unlearn_gym import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"unlearn-gym {__version__}\n"


@pytest.mark.parametrize("argv, unknown", [(["evaluate", "pretrained", "--bogus"], "--bogus"),
                                           (["instances", "--bogus", "x"], "--bogus x")])
def test_unknown_flag_shows_the_subcommand_usage(capsys, argv, unknown):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: unlearn-gym {argv[0]} ")
    assert f"unlearn-gym {argv[0]}: error: unrecognized arguments: {unknown}" in err


def test_evaluate_a_saved_env_model(tmp_path):
    """An unlearning run saved by the env is a model `unlearn-gym evaluate` accepts."""
    import json

    import gymnasium as gym
    import numpy as np

    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", horizon=5)
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros(1, np.float32))
    env.unwrapped.save(tmp_path / "run.pt")
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "run.pt"), "--samples", "4", "--forget-samples", "8",
                 "--steps", "3", "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["preset"] == "micro" and 0 < report["summary"]["retain_ssim"] < 1


def test_instances_lists_the_sets(capsys):
    from unlearn_gym.cli import main

    assert main(["instances"]) == 0
    out = capsys.readouterr().out
    assert "default (version 2)" in out and "micro-heavy-scale-b8-h30" in out and "test " in out
    assert "vae (version 1)" in out and "vae-micro-scale-b4-h30             cvae micro" in out
    assert main(["instances", "--set", "nope"]) == 2
    assert "known sets" in capsys.readouterr().err


def test_quick_keeps_a_registered_instances_horizon(monkeypatch):
    import unlearn_gym.benchmark as bench
    from unlearn_gym.cli import main

    seen = {}

    def fake(cfg, **kw):
        seen["cfg"] = cfg
        return {"cells": [], "failed": [], "run": {"wall_s": 0.0}, "claims": []}

    monkeypatch.setattr(bench, "run_benchmark", fake)
    assert main(["benchmark", "--quick", "--instances", "micro-heavy-scale-b16-h30", "--quiet"]) == 0
    assert seen["cfg"].settings.steps is None and seen["cfg"].seeds == 1
    assert main(["benchmark", "--quick", "--preset", "micro", "--quiet"]) == 0
    assert seen["cfg"].settings.steps == 50  # a preset's own problem: the quick budget
