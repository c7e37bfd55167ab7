"""Strict inputs (issue 7, item 5): bad env arguments, missing actions, user-named data directories
that do not hold the data, and one-line CLI errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from unlearn_gym.cli import main
from unlearn_gym.data import DataNotFoundError, find_source
from unlearn_gym.envs.encoding import decode_action
from unlearn_gym.validation import check_env_arguments

NAN, INF = math.nan, math.inf

BAD_ARGUMENTS = [
    ("horizon", 0), ("horizon", -5), ("horizon", 2.5), ("horizon", 10.0), ("horizon", True), ("horizon", "10"),
    ("batch_size", 0), ("batch_size", -1),
    ("probe_size", 0),
    ("beta", NAN), ("beta", INF), ("beta", -0.1),
    ("s", NAN), ("s", -1.0),
    ("reward_clip", 0.0), ("reward_clip", -1.0), ("reward_clip", NAN),
    ("divergence_factor", 1.0), ("divergence_factor", 0.5), ("divergence_factor", NAN),
    ("max_grad_norm", 0.0), ("max_grad_norm", -1.0), ("max_grad_norm", NAN),
    ("lr", 0.0), ("lr", -1e-4), ("lr", NAN), ("lr", "1e-4"),
    ("weight_decay", -0.01), ("weight_decay", NAN),
    ("render_cols", 0),
    ("render_steps", 0),
    ("max_train_digits", 0),
]


@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS)
def test_bad_env_argument_names_itself(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be .*, got {re.escape(repr(value))} "):
        check_env_arguments(**{name: value})


GOOD_ARGUMENTS = dict(
    horizon=1, batch_size=np.int64(4), probe_size=1, beta=0.0, s=0.0, reward_clip=INF,
    divergence_factor=INF, max_grad_norm=INF, lr=1e-4, weight_decay=0.0, render_cols=1, render_steps=1,
    max_train_digits=10,
)


def test_good_and_default_env_arguments_pass():
    check_env_arguments(**GOOD_ARGUMENTS)
    check_env_arguments(**{name: None for name in GOOD_ARGUMENTS})  # None: the preset's default


def test_unknown_argument_is_a_programming_error():
    with pytest.raises(TypeError, match="no rule for 'frobnicate'"):
        check_env_arguments(frobnicate=1)


def test_env_constructor_checks_before_loading():
    from unlearn_gym.envs.siss_env import SISSUnlearnEnv

    with pytest.raises(ValueError, match=r"^reward_clip must be"):
        SISSUnlearnEnv(preset="micro", reward_clip=-1.0)
    with pytest.raises(ValueError, match=r"^horizon must be"):
        SISSUnlearnEnv(preset="micro", horizon=0)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (None, "action is missing"),
        ("0.5", "must be numeric"),
        ({"lambda": 0.5}, "must be numeric"),
        (True, "must be numeric"),
        ([[0.1], [0.2, 0.3]], "not a numeric array"),
        ([0.1, 0.2], r"1 component\(s\).*shape \(2,\)"),
        (np.zeros((2, 2)), r"shape \(2, 2\)"),
        ([NAN], "contains NaN"),
    ],
)
def test_bad_actions(action, match):
    with pytest.raises(ValueError, match=match):
        decode_action(action, 1, (0.05, 0.95))


def test_good_actions_decode():
    assert decode_action(0.0, 1, (0.05, 0.95)) == (pytest.approx(0.5), None)
    assert decode_action([[1.0]], 1, (0.05, 0.95))[0] == pytest.approx(0.95)
    assert decode_action(np.array([-INF], np.float32), 1, (0.05, 0.95))[0] == pytest.approx(0.05)


def test_micro_env_step_none_says_missing():
    """The one end-to-end construction: a micro env refuses a missing or malformed action."""
    import gymnasium as gym

    env = gym.make("unlearn_gym:SISSUnlearnMicro-v0", horizon=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action is missing"):
        env.unwrapped.step(None)
    with pytest.raises(ValueError, match="component"):
        env.unwrapped.step(np.zeros(3, np.float32))
    env.unwrapped.step(np.zeros(1, np.float32))  # still usable after the refusals


# ---- user-named data directories -------------------------------------------------------------

def test_env_var_to_missing_directory_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("UNLEARN_GYM_FASHION_DIR", str(missing))
    with pytest.raises(DataNotFoundError) as e:
        find_source("fashion")
    msg = str(e.value)
    assert str(missing) in msg and "UNLEARN_GYM_FASHION_DIR" in msg and "does not exist" in msg


def test_env_var_to_directory_without_idx_files_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_MNIST_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"UNLEARN_GYM_MNIST_DIR.*no train-images"):
        find_source("mnist")


def test_explicit_missing_directory_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARN_GYM_MNIST_DIR", raising=False)
    missing = tmp_path / "nope"
    with pytest.raises(DataNotFoundError) as e:
        find_source("mnist", "train", missing)
    assert str(missing) in str(e.value) and "--mnist-dir" in str(e.value)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataNotFoundError, match="is not a directory"):
        find_source("mnist", "train", a_file)


def test_explicit_directory_wins_over_env_var(idx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_MNIST_DIR", str(tmp_path / "nonexistent"))
    assert find_source("mnist", "train", idx_dir).origin == str(idx_dir)


# ---- CLI: one line, non-zero exit ------------------------------------------------------------

def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_evaluate_garbage_checkpoint(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    assert main(["evaluate", str(garbage), "--quiet", "--out", str(tmp_path / "eval")]) == 2
    assert str(garbage) in _one_error_line(capsys)


def test_cli_evaluate_missing_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.pt"), "--quiet", "--out", str(tmp_path / "e")]) == 2
    assert "missing.pt" in _one_error_line(capsys)


def test_cli_missing_data_directory_argument(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["train-classifier", "--preset", "micro", "--epochs", "1", "--fashion-dir", str(missing),
                 "--out", str(tmp_path / "c.pt")]) == 2
    assert str(missing) in _one_error_line(capsys)
    assert not (tmp_path / "c.pt").exists()


def test_cli_info_with_missing_env_var_directory(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("UNLEARN_GYM_FASHION_DIR", str(missing))
    assert main(["info", "--preset", "micro"]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and str(missing) in text and "UNLEARN_GYM_FASHION_DIR" in text
