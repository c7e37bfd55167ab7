"""unlearn_gym.overrides: the one ``--set key=value`` grammar of the methods and the agents (no pyyaml)."""

from __future__ import annotations

import pytest

from unlearn_gym.methods import parse_assignments
from unlearn_gym.methods import parse_value as methods_parse_value
from unlearn_gym.overrides import parse_set, parse_value


@pytest.mark.parametrize("text, value", [
    ("0.3", 0.3), ("3e-4", 3e-4), ("3.0e-4", 3e-4), ("16", 16), ("-2", -2),
    ("true", True), ("False", False), ("TRUE", True),
    ("none", None), ("None", None), ("null", None), ("~", None), ("", None), ("  ", None),
    ("rescale", "rescale"), ("lin_3e-4", "lin_3e-4"), ("cuda", "cuda"), ("default:train", "default:train"),
    ("'quoted text'", "quoted text"), ('"1"', "1"),
    ("[64, 64]", [64, 64]), ("[32,32]", [32, 32]), ("(1, 2)", (1, 2)), ("[]", []), ("{}", {}),
    ('{"pi": [32]}', {"pi": [32]}),
    ("{pi: [32], vf: [32]}", {"pi": [32], "vf": [32]}),
    ("{n_forget: 32, n_per_retain: 4, steps: 4}", {"n_forget": 32, "n_per_retain": 4, "steps": 4}),
    ("{norm_obs: true, clip_obs: 10.0, gamma: null}", {"norm_obs": True, "clip_obs": 10.0, "gamma": None}),
    ("[a, b, 'c d', 1e-3]", ["a", "b", "c d", 1e-3]),
    ('{"a": true, "b": [1, {"c": null}]}', {"a": True, "b": [1, {"c": None}]}),  # JSON (the benchmark's cells)
    ("{net_arch: {pi: [64, 64], vf: [64]}, activation_fn: tanh}",
     {"net_arch": {"pi": [64, 64], "vf": [64]}, "activation_fn": "tanh"}),
    ("[unlearn_gym:SISSUnlearn-v0]", ["unlearn_gym:SISSUnlearn-v0"]),
])
def test_values(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_methods_and_agents_share_the_grammar():
    assert methods_parse_value is parse_value
    from unlearn_gym.methods import registry

    assert registry.parse_set is parse_set


@pytest.mark.parametrize("text", ["[1, 2", "{a 1}", "{a: 1] ", "[1] x", "{a: 1,, }", "['open]"])
def test_malformed_collections_are_errors(text):
    with pytest.raises(ValueError, match="cannot read"):
        parse_value(text)


def test_parse_set_keeps_keys_and_order():
    got = parse_set(["gamma=0.95", " env_kwargs.beta = 0.2", "x=a=b", "empty=", "gamma=0.9"])
    assert got == [("gamma", 0.95), ("env_kwargs.beta", 0.2), ("x", "a=b"), ("empty", None), ("gamma", 0.9)]
    with pytest.raises(ValueError, match=r"expected key=value, got 'gamma' \(e.g. --set gamma=0.95\)"):
        parse_set(["gamma"], example="gamma=0.95")
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["=1"])
    with pytest.raises(ValueError, match=r"--set 'a=\[1': cannot read"):
        parse_set(["a=[1"])


def test_methods_assignments_normalise_dashes():
    got = parse_assignments(["grad-units=none", "lam=0.3", "labels=[1, 2]"])
    assert got == {"grad_units": None, "lam": 0.3, "labels": [1, 2]}


def test_agents_overrides_raise_hyperparameter_errors():
    pytest.importorskip("yaml")
    from unlearn_gym.rl.config import HyperparameterError
    from unlearn_gym.rl.config import parse_set as rl_parse_set

    assert rl_parse_set(["policy_kwargs.net_arch={pi: [32]}"]) == [("policy_kwargs.net_arch", {"pi": [32]})]
    with pytest.raises(HyperparameterError, match=r"gamma=0\.95"):
        rl_parse_set(["gamma"])
    with pytest.raises(HyperparameterError, match="cannot read"):
        rl_parse_set(["n_steps=[64"])
