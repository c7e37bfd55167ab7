"""The forget tests (issue 19): retrained references, membership inference, relearning, distance; toy sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unlearn_gym.checkpoints import CheckpointError, read_sidecar
from unlearn_gym.data import build_contaminated_mnist
from unlearn_gym.eval.distance import paired_rate_difference
from unlearn_gym.eval.membership import auc, bootstrap_auc, compare_membership, membership_inference, per_example_losses
from unlearn_gym.eval.relearning import relearning_curve, steps_to_fraction, wilson
from unlearn_gym.pretrained import asset_path, load_classifier, load_pretrained

TOY_LOSS = {"timesteps": (50, 200), "sigmas": (0.3,), "n_draws": 1}


def test_auc_is_half_on_identical_distributions_and_high_when_members_have_lower_loss():
    rng = np.random.default_rng(0)
    same = auc(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(same - 0.5) < 0.03
    a, lo, hi = bootstrap_auc(rng.normal(size=200), rng.normal(size=200), n_boot=200)
    assert lo <= 0.5 <= hi and lo <= a <= hi
    members_loss, others_loss = rng.normal(0.0, 1.0, 300), rng.normal(1.5, 1.0, 300)
    a, lo, hi = bootstrap_auc(-members_loss, -others_loss, n_boot=200)  # score = minus the loss
    assert a > 0.8 and lo > 0.7
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count half


def test_per_example_losses_use_fixed_noise_for_any_model():
    data = build_contaminated_mnist("micro")
    x = data.forget_images[:5]
    ddpm = load_pretrained("micro")
    a, names = per_example_losses(ddpm, x, **TOY_LOSS)
    b, _ = per_example_losses(ddpm, x, **TOY_LOSS)
    assert a.shape == (5, 2) and names == ["t=50", "t=200"] and np.array_equal(a, b) and (a > 0).all()
    vae = load_pretrained("micro", model="cvae")
    v, vnames = per_example_losses(vae, x, **TOY_LOSS)
    assert v.shape == (5, 1) and vnames == ["sigma=0.3"]


def test_membership_reports_aucs_with_cis():
    data = build_contaminated_mnist("micro")
    res = membership_inference(load_pretrained("micro"), data, n_nonmembers=20, n_boot=50, **TOY_LOSS)
    assert res.n_members == data.meta["n_forget"] and res.n_nonmembers == 20
    assert res.ci_mean[0] <= res.auc_mean <= res.ci_mean[1] and res.best in res.per_level
    model = load_pretrained("micro")
    cmp = compare_membership(model, model, data, n_nonmembers=20, n_boot=50, **TOY_LOSS)
    assert cmp["difference"]["auc_mean"] == 0.0 and cmp["forgotten"]
    assert cmp["calibrated"]["auc"] == 0.5  # the model against itself: all scores tie
    assert cmp["forget_loss_ratio"]["ratio"] == pytest.approx(1.0)


def test_relearning_curve_shape_and_the_model_is_untouched():
    data = build_contaminated_mnist("micro", ratio=0.5)
    model = load_pretrained("micro", ratio=0.5)
    before = [p.clone() for p in model.parameters()]
    res = relearning_curve(model, data, load_classifier("micro"), f0=0.2, checkpoints=(0, 2, 5), n_samples=10,
                           ddim_steps=3, batch=8)
    assert res["steps"] == [0, 2, 5] and len(res["rates"]) == 3 and len(res["rates_ci"]) == 3
    assert all(0.0 <= r <= 1.0 for r in res["rates"]) and set(res["per_seed"]) == {0}
    assert {"f0", "steps_to_half_f0", "mean_rate", "config", "seconds"} <= set(res)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="increasing"):
        relearning_curve(model, data, load_classifier("micro"), checkpoints=(5, 2))


def test_steps_to_fraction_and_intervals():
    assert steps_to_fraction([0, 10, 20], [0.0, 0.1, 0.3], 0.2) == 15.0
    assert steps_to_fraction([0, 10], [0.3, 0.4], 0.2) == 0.0
    assert steps_to_fraction([0, 10], [0.0, 0.1], 0.2) is None
    lo, hi = wilson(0.0, 100)
    assert lo == 0.0 and 0.0 < hi < 0.05
    d, lo, hi = paired_rate_difference(torch.tensor([1, 1, 0, 0]), torch.tensor([0, 1, 0, 0]))
    assert d == 0.25 and lo < d < hi


def test_retain_only_data_has_no_forget_images_and_serves_every_ratio():
    a = build_contaminated_mnist("micro", ratio=0.1).retain_only()
    b = build_contaminated_mnist("micro", ratio=0.5).retain_only()
    assert len(a.forget_images) == 0 and not a.train_is_forget.any() and a.meta["retain_only"]
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.train_labels, b.train_labels)


def test_retain_only_of_an_erase_task_drops_the_digit_and_keeps_the_trousers():
    data = build_contaminated_mnist("micro", ratio=0.5)
    erased = data.retain_only("erase-7")
    assert not (erased.retain_labels == 7).any() and torch.equal(erased.forget_images, data.forget_images)
    assert erased.meta["task"] == "erase-7" and erased.meta["n_erased"] == int((data.retain_labels == 7).sum()) > 0
    assert len(erased.retain_images) == len(data.retain_images) - erased.meta["n_erased"]
    with pytest.raises(ValueError, match="erase-<digit"):
        data.retain_only("erase-x")


def test_erase_retrained_assets_are_named_per_task_and_ratio(tmp_path, capsys):
    from unlearn_gym.cli import main

    assert asset_path("ddpm", "tiny", 0.1, "retrained", "erase-7").name == "ddpm-tiny-erase7-retrained.pt"
    assert asset_path("cvae", "micro", 0.5, "retrained", "erase-3").name == "cvae-micro-erase3-r0.5-retrained.pt"
    assert asset_path("ddpm", "micro", 0.5, "pretrained", "erase-3").name == "ddpm-micro-r0.5.pt"
    with pytest.raises(CheckpointError, match="--retain-only --task erase-2"):
        load_pretrained("micro", variant="retrained", task="erase-2")
    assert main(["pretrain", "--preset", "micro", "--task", "erase-7", "--steps", "1",
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "add --retain-only" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("family", ["ddpm", "cvae"])
def test_shipped_retrained_model_never_saw_the_forget_set(family):
    path = asset_path(family, "micro", 0.5, "retrained")
    assert path.name == f"{family}-micro-retrained.pt" and path == asset_path(family, "micro", 0.1, "retrained")
    model = load_pretrained("micro", model=family, variant="retrained", ratio=0.5)
    assert not model.training
    meta = read_sidecar(path)
    assert meta["data"]["retain_only"] and meta["data"]["n_forget_trained"] == 0 and meta["never_saw_forget_set"]
    assert "--retain-only" in meta["command"] and meta["variant"] == "retrained"
    assert meta["quality"]["trouser_rate"] < 0.05
    with pytest.raises(ValueError, match="variant"):
        load_pretrained("micro", variant="unlearned")


def test_cli_forget_tests(tmp_path, monkeypatch, capsys):
    from unlearn_gym.cli import main
    from unlearn_gym.eval import forgetting

    monkeypatch.setattr(forgetting, "MEMBERSHIP_DEFAULTS",
                        {"n_nonmembers": 10, "n_boot": 20, "n_draws": 1, "timesteps": (100,)})
    monkeypatch.setattr(forgetting, "RELEARN_DEFAULTS", {"checkpoints": (0, 3), "n_samples": 8, "ddim_steps": 2,
                                                         "batch": 4})
    out = tmp_path / "eval"
    assert main(["evaluate", "pretrained", "--preset", "micro", "--samples", "4", "--forget-samples", "8",
                 "--steps", "2", "--quiet", "--out", str(out), "--forget-tests", "--ratio", "0.5"]) == 0
    res = json.loads((out / "forget_tests.json").read_text())
    assert set(res) >= {"membership", "relearning", "distance", "verdict", "config"}
    assert res["config"]["ratio"] == 0.5 and res["relearning"]["model"]["steps"] == [0, 3]
    assert "forget test, membership" in capsys.readouterr().out
    assert (out / "forget_tests.md").read_text().startswith("# Forget tests: pretrained")


def test_pretrain_retain_only_records_it(tmp_path):
    from unlearn_gym.diffusion import pretrain
    from unlearn_gym.vae import pretrain_cvae

    for fn, name in ((pretrain, "ddpm"), (pretrain_cvae, "cvae")):
        out = tmp_path / f"{name}.pt"
        fn("micro", out, steps=2, retain_only=True, progress=False, command="test")
        meta = read_sidecar(out)
        assert meta["data"]["retain_only"] and meta["data"]["n_forget_trained"] == 0 and meta["step"] == 2
        fn("micro", out, steps=1, retain_only=True, task="erase-4", progress=False, command="test")
        assert read_sidecar(out)["data"]["task"] == "erase-4"


def test_tiny_relearns_at_its_own_learning_rate(monkeypatch):
    """forget_tests passes the preset's relearning lr (tiny: 1e-4); an explicit one wins."""
    import unlearn_gym.eval.forgetting as fg

    seen = []

    def fake_curve(model, data, classifier, **kw):
        seen.append(kw["lr"])
        return {"steps": [0, 2], "rates": [0.0, 0.0], "rates_ci": [[0, 0], [0, 0]], "steps_to_half_f0": None,
                "mean_rate": 0.0, "f0": 0.1}

    def stop(*a, **k):
        raise RuntimeError("stop here")

    monkeypatch.setattr(fg, "relearning_curve", fake_curve)
    monkeypatch.setattr(fg, "forget_rate", lambda *a, **k: 0.1)
    monkeypatch.setattr(fg, "compare_membership", lambda *a, **k: {})
    monkeypatch.setattr(fg, "distance_to_retrained", stop)
    for preset, kw, want in (("tiny", None, 1e-4), ("micro", None, 5e-4), ("tiny", {"lr": 3e-4}, 3e-4)):
        seen.clear()
        with pytest.raises(RuntimeError, match="stop here"):
            fg.forget_tests(torch.nn.Linear(1, 1), preset, classifier=object(), retrained=torch.nn.Linear(1, 1),
                            pretrained=torch.nn.Linear(1, 1), data=object(), relearn_kw=kw)
        assert seen and all(lr == want for lr in seen), (preset, seen)
