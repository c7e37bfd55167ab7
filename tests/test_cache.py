"""The measurement cache (unlearn_gym.cache): a hit is what recomputing gives, keys follow the inputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from unlearn_gym import cache


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_CACHE_DIR", str(tmp_path))
    cache.clear_memory_cache()
    yield tmp_path
    cache.clear_memory_cache()


def _counter():
    calls = []

    def compute():
        calls.append(1)
        return {"x": 1.5, "nan": float("nan"), "nested": {"3": 0.25}}

    return calls, compute


def test_a_value_is_computed_once_then_read_from_disk(fresh):
    calls, compute = _counter()
    a = cache.cached("demo", {"k": 1}, compute)
    cache.clear_memory_cache()  # a new process: only the disk remains
    b = cache.cached("demo", {"k": 1}, compute)
    assert len(calls) == 1 and b["x"] == a["x"] and b["nested"] == {"3": 0.25} and b["nan"] != b["nan"]
    assert len(list(fresh.glob("demo-*.json"))) == 1
    cache.cached("demo", {"k": 2}, compute)  # another key
    assert len(calls) == 2
    b["nested"]["3"] = 9.0  # callers get copies
    assert cache.cached("demo", {"k": 1}, compute)["nested"]["3"] == 0.25


def test_a_corrupt_file_is_recomputed_with_a_warning(fresh):
    calls, compute = _counter()
    cache.cached("demo", {"k": 1}, compute)
    (path,) = fresh.glob("demo-*.json")
    path.write_text("{not json")
    cache.clear_memory_cache()
    with pytest.warns(UserWarning, match="unreadable cache file"):
        cache.cached("demo", {"k": 1}, compute)
    assert len(calls) == 2 and json.loads(path.read_text())["value"]["x"] == 1.5


def test_turning_the_disk_cache_off(fresh, monkeypatch):
    monkeypatch.setenv("UNLEARN_GYM_CACHE", "0")
    _, compute = _counter()
    cache.cached("demo", {"k": 1}, compute)
    assert not list(fresh.iterdir())


def test_the_digest_follows_the_weights():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert cache.tensor_digest(a) == cache.tensor_digest(b)
    with torch.no_grad():
        b.bias[0] += 1e-7
    assert cache.tensor_digest(a) != cache.tensor_digest(b)


def test_an_env_built_from_the_cache_scores_like_one_measured_afresh(fresh):
    import gymnasium as gym
    import numpy as np

    small = {"n_forget": 8, "n_per_retain": 2, "steps": 2}
    kw = dict(horizon=3, batch_size=8, outcome_config=small)
    first = gym.make("unlearn_gym:SISSUnlearnMicro-v0", **kw).unwrapped
    assert {p.name.split("-")[0] for p in fresh.glob("*.json")} == {"outcome", "reference"}
    cache.clear_memory_cache()
    second = gym.make("unlearn_gym:SISSUnlearnMicro-v0", **kw).unwrapped
    assert second.shared.scorer.reference == first.shared.scorer.reference
    assert second.shared.origin.retain_loss == first.shared.origin.retain_loss
    # and both equal a measurement made now, without the cache
    assert first.shared.scorer.measure(first.model) == first.shared.scorer.reference
    outs = []
    for env in (first, second):
        env.reset(seed=3)
        done = False
        while not done:
            *_, term, trunc, info = env.step(np.zeros(1, np.float32))
            done = term or trunc
        outs.append(info["outcome"]["outcome"])
    assert outs[0] == outs[1]
