"""The paper-scale `mnist28` path end to end, at toy length: pretrain -> train-classifier -> ship into
$UNLEARN_GYM_ASSET_DIR -> env, a method, the evaluation suite and a benchmark cell on 28x28.

No mnist28 model ships (pretraining it takes about a day on these CPUs; docs/devices.md); this checks that
the code path a GPU user takes works at 28x28 (three UNet levels, 28 -> 14 -> 7), not the quality of
two pretraining steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import unlearn_gym  # noqa: F401
from unlearn_gym.checkpoints import CheckpointError
from unlearn_gym.pretrained import ASSET_DIR_ENV, asset_path, load_pretrained
from unlearn_gym.ship import ship_assets


@pytest.fixture(scope="module")
def mnist28_assets(tmp_path_factory):
    from unlearn_gym.classifier import train_classifier
    from unlearn_gym.data import build_contaminated_mnist
    from unlearn_gym.diffusion import pretrain

    work = tmp_path_factory.mktemp("mnist28")
    data = build_contaminated_mnist("mnist28", max_train_digits=300)
    pretrain("mnist28", work / "ddpm.pt", steps=2, data=data, progress=False, save_every=10)
    train_classifier("mnist28", work / "clf.pt", data=data, epochs=1, progress=False)
    assets = work / "assets"
    q = ship_assets("mnist28", work / "ddpm.pt", work / "clf.pt", n_per_label=1, steps=2, dest=assets)
    assert q["dest"] == str(assets) and len(q["per_label"]) == 10
    return assets


def test_unshipped_preset_names_the_asset_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(ASSET_DIR_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match=f"(?s)unlearn-gym pretrain --preset mnist28.*{ASSET_DIR_ENV}"):
        load_pretrained("mnist28")


def test_mnist28_end_to_end_through_the_user_asset_folder(mnist28_assets, monkeypatch, tmp_path):
    from unlearn_gym.benchmark import BenchmarkConfig, BenchSettings, run_benchmark
    from unlearn_gym.eval.evaluate import evaluate
    from unlearn_gym.methods import run
    from unlearn_gym.policies import ConstantPolicy, rollout

    monkeypatch.setenv(ASSET_DIR_ENV, str(mnist28_assets))
    assert asset_path("ddpm", "mnist28").parent == mnist28_assets
    assert asset_path("ddpm", "micro").parent != mnist28_assets  # the package's assets still serve the rest
    assert load_pretrained("mnist28").resolution == 28

    small = {"n_forget": 4, "n_per_retain": 1, "steps": 2}
    env = gym.make("unlearn_gym:SISSUnlearn-v0", preset="mnist28", horizon=2, batch_size=4, outcome_config=small)
    r = rollout(env.unwrapped, ConstantPolicy(0.0), seed=0)
    assert r["steps"] == 2 and np.isfinite(r["info"]["outcome"]["outcome"])
    assert env.render is not None

    res = run("adaptive-vi", preset="mnist28", steps=1, batch_size=4)
    report = evaluate(res.model, load_pretrained("mnist28"), "mnist28", samples_per_label=2, forget_samples=4,
                      steps=2, progress=False)
    assert report.samples["model"].shape[-1] == 28 and np.isfinite(report.summary["retain_fid"])

    cfg = BenchmarkConfig(preset="mnist28", seeds=1, methods=["siss"], pareto=False, workers=1,
                          out=str(tmp_path / "bench"),
                          settings=BenchSettings(eval_samples=2, eval_forget_samples=4, eval_steps=2, steps=1,
                                                 outcome=False))
    out = run_benchmark(cfg, progress=False)
    assert [c["status"] for c in out["cells"]] == ["ok"] and not out["failed"]
