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


# --- erase-<d> tasks: the reference retrained without digit d (the shipped micro erase-7 asset) ---------------

ERASE = "erase-7"


def _toy_forget_defaults(monkeypatch):
    from unlearn_gym.eval import forgetting

    monkeypatch.setattr(forgetting, "MEMBERSHIP_DEFAULTS",
                        {"n_nonmembers": 10, "n_boot": 20, "n_draws": 1, "timesteps": (100,)})
    monkeypatch.setattr(forgetting, "RELEARN_DEFAULTS", {"checkpoints": (0, 3), "n_samples": 8, "ddim_steps": 2,
                                                         "batch": 4})


def test_erase_membership_members_are_the_digits_training_images_against_held_out_ones():
    from unlearn_gym.data import task_split

    data = build_contaminated_mnist("micro")
    model = load_pretrained("micro")
    _, _, forget, forget_labels = task_split(data, ERASE)
    res = membership_inference(model, data, task=ERASE, n_boot=20, **TOY_LOSS)
    assert res.n_members == len(forget) == int((data.retain_labels == 7).sum()) and (forget_labels == 7).all()
    assert res.n_nonmembers == int((data.test_labels == 7).sum()) > 0
    assert res.config["label"] == 7 and res.config["flip"] is False and res.config["task"] == ERASE
    # the members' losses are those of the digit-7 training images conditioned on 7, unflipped
    direct, _ = per_example_losses(model, forget, label=7, flip=False, seed=0, **TOY_LOSS)
    assert res.mean_loss_members == pytest.approx(dict(zip(["t=50", "t=200"], direct.mean(0).tolist())))
    trousers = membership_inference(model, data, n_nonmembers=10, n_boot=20, **TOY_LOSS)
    assert trousers.n_members == data.meta["n_forget"] and trousers.config["label"] == 1 and trousers.config["flip"]
    retrained = load_pretrained("micro", variant="retrained", task=ERASE)
    cmp = compare_membership(model, retrained, data, task=ERASE, n_nonmembers=10, n_boot=20, **TOY_LOSS)
    assert cmp["model"]["n_members"] == len(forget) and cmp["model"]["n_nonmembers"] == 10
    # the model that never saw a 7 fits the 7s worse than the pretrained model
    assert cmp["forget_loss_ratio"]["ratio"] < 1.0


def test_erase_relearning_records_the_erased_digits_rate():
    from unlearn_gym.eval.rates import forget_hits, forget_score, label_rates
    from unlearn_gym.eval.relearning import forget_rate

    data = build_contaminated_mnist("micro")
    clf = load_classifier("micro")
    model = load_pretrained("micro")
    kw = {"n_samples": 16, "ddim_steps": 3}
    res = relearning_curve(model, data, clf, task=ERASE, f0=0.9, checkpoints=(0, 2), batch=8, **kw)
    assert res["config"]["task"] == ERASE and res["steps"] == [0, 2]
    assert res["rates"][0] == forget_rate(model, clf, task=ERASE, **kw)
    # the rate is the outcome's forget score of erase tasks: label-7 samples classified 7 (argmax)
    from unlearn_gym.eval.quality import sample_labels

    x, y = sample_labels(model, 16, steps=3, seed=0, labels=[7])
    assert forget_hits(clf, x, ERASE).float().mean().item() == pytest.approx(res["rates"][0])
    assert forget_score(label_rates(clf, x, y)[7], ERASE) == pytest.approx(res["rates"][0])
    retrained = load_pretrained("micro", variant="retrained", task=ERASE)
    assert forget_rate(retrained, clf, task=ERASE, **kw) < res["rates"][0]  # it never saw a 7


def test_checkpoint_task_ratio_reads_the_sidecar():
    from unlearn_gym.eval.forgetting import checkpoint_task_ratio, forget_rate_name

    assert checkpoint_task_ratio("pretrained") == ("trousers", 0.1)
    assert checkpoint_task_ratio(asset_path("ddpm", "micro", 0.1, "retrained", ERASE)) == (ERASE, 0.1)
    assert checkpoint_task_ratio(asset_path("ddpm", "micro", 0.5, "pretrained")) == ("trousers", 0.5)
    assert forget_rate_name(ERASE) == "digit-7 rate" and forget_rate_name("trousers") == "trouser rate"


def test_cli_forget_tests_on_an_erase_model(tmp_path, monkeypatch, capsys):
    """The erase-7 retrained model's own checkpoint: the task comes from its sidecar; it is its reference."""
    from unlearn_gym.cli import main

    _toy_forget_defaults(monkeypatch)
    out = tmp_path / "eval"
    ckpt = str(asset_path("ddpm", "micro", 0.1, "retrained", ERASE))
    assert main(["evaluate", ckpt, "--samples", "4", "--forget-samples", "8", "--steps", "2", "--quiet",
                 "--out", str(out), "--forget-tests"]) == 0
    res = json.loads((out / "forget_tests.json").read_text())
    assert res["config"]["task"] == ERASE and res["config"]["ratio"] == 0.1
    assert res["membership"]["difference"]["auc_mean"] == 0.0  # the reference against itself
    assert res["membership"]["model"]["config"]["label"] == 7
    assert res["relearning"]["model"]["config"]["task"] == ERASE
    assert res["distance"]["config"]["forget_rate_pairs"] == 4  # --samples label-7 pairs
    assert res["distance"]["difference"]["forget_rate"]["value"] == 0.0
    assert res["distance"]["difference"]["kept_accuracy"] == 0.0  # labels other than 7, the same model twice
    text = capsys.readouterr().out
    assert "digit-7 rate" in text and "retrained without the erase-7 forget set" in text
    assert "accuracy of the other digits +0.000" in text
    assert "## Relearning (digit-7 rate" in (out / "forget_tests.md").read_text()


def test_cli_forget_tests_of_a_task_without_a_reference_fail_early(tmp_path, capsys):
    from unlearn_gym.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "pretrained", "--preset", "micro", "--quiet", "--out", str(out), "--forget-tests",
                 "--task", "erase-2"]) == 2
    assert "--retain-only --task erase-2" in capsys.readouterr().err
    assert not (out / "metrics.json").exists()  # failed before the evaluation ran


def test_forget_tests_of_erase_pretrained_use_the_erase_reference(monkeypatch, load_pretrained_calls):
    from unlearn_gym.eval.forgetting import forget_tests

    _toy_forget_defaults(monkeypatch)
    res = forget_tests(load_pretrained("micro"), "micro", task=ERASE,
                       distance_kw={"samples_per_label": 4, "forget_samples": 8, "steps": 2})
    assert {"variant": "retrained", "task": ERASE}.items() <= next(
        c for c in load_pretrained_calls if c.get("variant") == "retrained").items()
    assert res["config"]["task"] == ERASE and res["verdict"]["distance"].startswith("digit-7 rate")
    assert res["relearning"]["f0"] == res["relearning"]["model"]["rates"][0]  # the model is the pretrained one


def test_benchmark_forget_tests_on_an_erase_instance(tmp_path, monkeypatch):
    """benchmark --forget-tests on ``micro-erase7-h100``: the erase-7 reference, the digit-7 rate, the table."""
    from unlearn_gym.benchmark import forgetting
    from unlearn_gym.benchmark.cells import BenchSettings
    from unlearn_gym.benchmark.runner import BenchmarkConfig, run_benchmark

    _toy_forget_defaults(monkeypatch)
    forgetting._REFS.clear()
    monkeypatch.setattr(forgetting, "RELEARN_KW", {"n_samples": 8, "checkpoints": (0, 2), "ddim_steps": 2})
    settings = BenchSettings(eval_samples=4, eval_forget_samples=8, eval_steps=4, steps=2, forget_tests=True)
    cfg = BenchmarkConfig(instances=["micro-erase7-h100"], seeds=1, methods=["baseline"], pareto=False,
                          settings=settings, workers=1, out=str(tmp_path / "bench"))
    res = run_benchmark(cfg, progress=False)
    assert not res["failed"]
    f = res["cells"][0]["forget"]
    assert f["task"] == ERASE and f["verdict"] in forgetting.VERDICTS and f["early_relearn"][0] == 2
    assert f["loss_ratio"][0] < 1.0  # the pretrained model fits the 7s better than the model that never saw one
    assert any(k.endswith(f"|{ERASE}") for k in forgetting._REFS)
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "## Did it forget?" in report and "| row | seeds | digit-7 rate |" in report
