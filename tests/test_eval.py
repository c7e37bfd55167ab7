"""The evaluation suite on the `micro` preset: measures, paired SSIM, reports, CLI, plots, bad input."""

from __future__ import annotations

import copy
import itertools
import json

import pytest
import torch

from unlearn_gym.checkpoints import CheckpointError, save_checkpoint
from unlearn_gym.cli import main
from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS, build_contaminated_mnist
from unlearn_gym.diffusion.unet import build_unet
from unlearn_gym.eval import (
    ClassifierFeatures,
    EvalReport,
    evaluate,
    frechet_distance,
    inception_score,
    kernel_distance,
    label_rates,
    paired_ssim,
    plot_forget_retain,
    plot_lambda_trajectory,
    plot_loss_components,
)
from unlearn_gym.eval.evaluate import draw_samples, eval_labels, load_eval_model
from unlearn_gym.eval.plots import paired_grid
from unlearn_gym.eval.report import FORGET_MEASURES, RETAIN_MEASURES
from unlearn_gym.pretrained import load_classifier, load_pretrained

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# small but non-trivial: 48 label-1 samples, 12 per retain label, 10 DDIM steps
EVAL_KW = {"samples_per_label": 12, "forget_samples": 48, "steps": 10, "seed": 3, "kid_subsets": 10,
           "progress": False}


@pytest.fixture(scope="module")
def classifier():
    return load_classifier("micro")


@pytest.fixture(scope="module")
def data():
    return build_contaminated_mnist("micro")


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained("micro")


@pytest.fixture(scope="module")
def report(pretrained, classifier, data):
    """The shipped pretrained micro model evaluated against itself (samples reused)."""
    return evaluate(pretrained, pretrained, "micro", classifier=classifier, data=data, **EVAL_KW)


def _noisy(x: torch.Tensor, sigma: float) -> torch.Tensor:
    e = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return (x + sigma * e).clamp(-1, 1)


# ------------------------------------------------------------------ feature extractor and measures


def test_feature_extractor_contract(classifier, data):
    feats = ClassifierFeatures(classifier, "features")
    logits = ClassifierFeatures(classifier, "logits")
    assert feats.num_features == 128 and logits.num_features == 11
    x = data.test_images[:16]
    assert feats(x).shape == (16, 128) and logits(x).shape == (16, 11)
    # uint8 in [0, 255] is the same image as float in [-1, 1]
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(feats(u8), feats(u8.float() / 127.5 - 1))
    # a metric switching to train mode must not switch on dropout / batch statistics
    feats.train()
    assert not feats.training and not classifier.training
    assert torch.equal(feats(x), feats(x))
    with pytest.raises(ValueError, match="shape"):
        feats(torch.zeros(4, 1, 16, 16))  # a tiny-preset image
    with pytest.raises(ValueError, match="shape"):
        feats(torch.zeros(4, 3, 8, 8))  # RGB
    with pytest.raises(ValueError):
        ClassifierFeatures(classifier, "softmax")


def test_fid_kid_zero_on_self_and_monotone_in_noise(classifier, data):
    x = data.test_images
    sigmas = (0.1, 0.2, 0.4, 0.8)
    fid_self = frechet_distance(classifier, x, x)
    fids = [frechet_distance(classifier, x, _noisy(x, s)) for s in sigmas]
    assert abs(fid_self) < 1e-6 * fids[0]
    assert all(a < b for a, b in itertools.pairwise(fids)), fids
    kw = {"subsets": 30, "subset_size": 300, "seed": 0}
    kid_self = kernel_distance(classifier, x, x, **kw)
    kids = [kernel_distance(classifier, x, _noisy(x, s), **kw) for s in sigmas]
    assert abs(kid_self.mean) < 3 * kid_self.std + 1e-6  # zero up to the subset noise
    assert kid_self.mean < kids[0].mean
    assert all(a.mean < b.mean for a, b in itertools.pairwise(kids)), [k.mean for k in kids]
    assert kids[-1].mean > 10 * max(kid_self.std, 1e-6)


def test_kid_and_is_are_seeded_and_leave_the_global_rng_alone(classifier, data):
    x, y = data.test_images[:300], _noisy(data.test_images[300:600], 0.3)
    state = torch.get_rng_state()
    a = kernel_distance(classifier, x, y, subsets=5, subset_size=100, seed=1)
    b = kernel_distance(classifier, x, y, subsets=5, subset_size=100, seed=1)
    c = kernel_distance(classifier, x, y, subsets=5, subset_size=100, seed=2)
    assert a == b and a.mean != c.mean
    assert kernel_distance(classifier, x[:50], y, subset_size=1000).subset_size == 50  # capped
    assert inception_score(classifier, x, splits=3, seed=5) == inception_score(classifier, x, splits=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)


def test_inception_score_rewards_diversity(classifier, data):
    all_digits, _ = inception_score(classifier, data.test_images, splits=1)
    threes, _ = inception_score(classifier, data.test_images[data.test_labels == 3], splits=1)
    assert 1.0 <= threes < 2.0 < 6.0 < all_digits <= 11.0


def test_trouser_rate_of_real_images(classifier, data):
    ones = data.test_images[data.test_labels == CONTAMINATED_LABEL]
    trousers = data.test_trousers
    r_trousers = label_rates(classifier, trousers, torch.full((len(trousers),), CONTAMINATED_LABEL))
    r_ones = label_rates(classifier, ones, torch.full((len(ones),), CONTAMINATED_LABEL))
    assert r_trousers[CONTAMINATED_LABEL].confident_trouser >= 0.95
    assert r_ones[CONTAMINATED_LABEL].confident_trouser <= 0.05
    assert r_ones[CONTAMINATED_LABEL].confident_label >= 0.8


# ------------------------------------------------------------------ SSIM


def test_paired_ssim_identity_and_shape_check():
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    assert torch.allclose(paired_ssim(x, x), torch.ones(6))
    assert (paired_ssim(x, x.flip(0)) < 0.9).all()
    with pytest.raises(ValueError):
        paired_ssim(x, x[:3])


def test_ssim_of_model_against_itself_is_one_and_drops_after_perturbation(pretrained):
    labels = eval_labels(6, 12)
    noise = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = draw_samples(pretrained, labels, noise, steps=10)
    b = draw_samples(copy.deepcopy(pretrained), labels, noise, steps=10, batch_size=7)  # other chunking
    assert torch.allclose(paired_ssim(a, b), torch.ones(len(labels)), atol=1e-4)
    perturbed = copy.deepcopy(pretrained)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    c = draw_samples(perturbed, labels, noise, steps=10)
    assert paired_ssim(a, c).mean() < 0.95


# ------------------------------------------------------------------ evaluate and the report


def test_evaluate_pretrained_micro_is_complete(report):
    s, c = report.summary, report.config
    for key, _, _ in FORGET_MEASURES + RETAIN_MEASURES:
        assert s[key] is not None, key
    assert s["n_forget_samples"] == 48 and s["n_retain_samples"] == 12 * 9
    assert c["steps"] == 10 and c["seed"] == 3 and c["n_samples"] == 48 + 12 * 9
    assert c["reference_is_model"] and c["n_sampled"] == c["n_samples"]  # samples reused, not redrawn
    assert c["n_real_trousers"] == 1000 and c["n_real_per_label"] > 0
    # the model against itself: SSIM 1 on every pair, and the reference column equals the model's
    assert s["retain_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert s["n_forget_ssim_pairs"] == round(s["trouser_rate"] * 48)
    for key in ("trouser_rate", "forget_fid", "retain_fid", "retain_is"):
        assert report.reference_summary[key] == s[key]
    assert 0.0 <= s["trouser_rate"] <= 1.0 and s["forget_fid"] > s["retain_fid"] > 0
    assert 1.0 <= s["retain_is"] <= 11.0
    assert report.timing["total_s"] > 0 and report.calibration["real_trousers_trouser_rate"] >= 0.95


def test_per_class_table_has_one_row_per_label(report):
    rows = report.per_class
    assert [r["label"] for r in rows] == list(range(NUM_LABELS))
    assert [r["n"] for r in rows] == [48 if lab == CONTAMINATED_LABEL else 12 for lab in range(NUM_LABELS)]
    one = rows[CONTAMINATED_LABEL]
    assert one["confident_trouser"] == report.summary["trouser_rate"]
    assert one["fid_trousers"] == report.summary["forget_fid"]
    assert all(r["fid"] is not None and r["kid"] is not None and r["ssim"] is not None for r in rows)
    table = [ln for ln in report.to_markdown().splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(table) == NUM_LABELS


def test_report_json_round_trip(report, tmp_path):
    back = EvalReport.from_json(report.to_json())
    assert back == report and back.to_dict() == report.to_dict()
    path = report.save_json(tmp_path / "m.json")
    assert EvalReport.load(path) == report
    assert "NaN" not in path.read_text()
    with pytest.raises(ValueError, match="not an evaluation report"):
        EvalReport.from_dict({"preset": "micro"})


def test_evaluate_is_reproducible_and_pairs_with_a_separate_reference(report, pretrained, classifier, data):
    other = evaluate(pretrained, copy.deepcopy(pretrained), "micro", classifier=classifier, data=data,
                     keep_samples=False, **EVAL_KW)
    assert other.samples is None
    assert not other.config["reference_is_model"] and other.config["n_sampled"] == 2 * other.config["n_samples"]
    assert other.summary["retain_ssim"] == pytest.approx(1.0, abs=1e-4)
    for key in ("trouser_rate", "one_rate", "junk_rate", "forget_fid", "forget_kid", "retain_fid", "retain_is"):
        assert other.summary[key] == pytest.approx(report.summary[key], rel=1e-4), key


def test_evaluate_rejects_models_of_another_preset(classifier, data):
    with pytest.raises(CheckpointError, match="preset"):
        evaluate(build_unet("tiny"), None, "micro", classifier=classifier, data=data, **EVAL_KW)


# ------------------------------------------------------------------ CLI and loading


def test_cli_evaluate_writes_json_markdown_and_grid(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["evaluate", "pretrained", "--preset", "micro", "--samples", "4", "--forget-samples", "8",
               "--steps", "5", "--out", str(out), "--quiet"])
    assert rc == 0
    rep = EvalReport.load(out / "metrics.json")
    assert rep.preset == "micro" and rep.config["steps"] == 5 and rep.summary["n_forget_samples"] == 8
    assert json.loads((out / "metrics.json").read_text())["config"]["samples_per_label"] == 4
    assert "## Per class" in (out / "metrics.md").read_text()
    assert (out / "samples.png").read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    assert "trouser" in capsys.readouterr().out


def test_cli_evaluate_unlearned_checkpoint_and_bad_files(tmp_path, pretrained, capsys):
    good = save_checkpoint(tmp_path / "u.pt", "unlearned", "micro", {"model": pretrained.state_dict()})
    model, preset = load_eval_model(good)
    assert preset == "micro" and model.resolution == 8
    other = save_checkpoint(tmp_path / "t.pt", "ddpm", "tiny", {"model": build_unet("tiny").state_dict()})
    corrupt = tmp_path / "c.pt"
    corrupt.write_bytes(good.read_bytes()[:500])
    # the CLI turns a CheckpointError into one `error:` line and a non-zero status
    for argv, match in (
        (["evaluate", str(other), "--preset", "micro"], "preset"),
        (["evaluate", str(good), "--reference", str(other)], "preset"),
        (["evaluate", str(corrupt)], "corrupt"),
    ):
        assert main([*argv, "--quiet", "--out", str(tmp_path / "x")]) != 0
        err = capsys.readouterr().err
        assert err.startswith("error:") and match in err and "Traceback" not in err
    classifier_ck = save_checkpoint(tmp_path / "k.pt", "classifier", "micro", {"model": {}})
    with pytest.raises(CheckpointError, match="classifier"):
        load_eval_model(classifier_ck)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ plots and grids


def test_plots_write_png(tmp_path, report):
    a = plot_lambda_trajectory({"adaptive": [0.5, 0.6, 0.4], "static": [0.5] * 3}, tmp_path / "l.png",
                               bounds=(0.1, 0.9))
    b = plot_loss_components({"L_x": [1.0, 0.8, 0.7], "L_a": [1.2, 1.5, 2.0]}, tmp_path / "c.png", log_y=True)
    c = plot_forget_retain({"pretrained": report, "other": {"trouser_rate": 0.1, "retain_fid": 5.0}},
                           tmp_path / "s.png")
    for p in (a, b, c):
        assert p.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(KeyError):
        plot_forget_retain({"x": {"trouser_rate": 0.1}}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_paired_grid_layout(report):
    s = report.samples
    grid = paired_grid(s["model"], s["labels"], s["reference"], per_row=5, scale=2)
    side = 8 * 2
    assert grid.shape == (NUM_LABELS * (side + 1) + 1, 11 * (side + 1) + 1, 3)
    alone = paired_grid(s["model"], s["labels"], None, per_row=5, scale=1)
    assert alone.shape == (NUM_LABELS * 9 + 1, 5 * 9 + 1, 3)


def test_sample_grid_is_labelled(report, tmp_path):
    from unlearn_gym.eval.plots import sample_grid_figure, save_sample_grid

    ax = sample_grid_figure(report, per_row=5, scale=2).axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["1 (contaminated)", "0", "2", "3", "4", "5", "6", "7", "8", "9"]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert cols[0].startswith("reference") and cols[1].startswith("model")
    assert "one row per label" in ax.get_title() and "DDIM 10 steps" in ax.get_title()
    assert save_sample_grid(report, tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC


def test_paired_grid_shows_reference_trouser_pairs_first():
    labels = torch.tensor([1, 1, 1, 1, 0, 0])
    values = torch.linspace(-1, 1, 6)
    imgs = values.view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    first = torch.tensor([False, False, True, False, False, False])
    grid = paired_grid(imgs, labels, imgs, first=first, per_row=2, scale=1)
    px = lambda i: round((float(values[i]) + 1) * 127.5)  # noqa: E731
    assert grid[1, 1, 0] == px(2) and grid[1, 6, 0] == px(0)  # label-1 row: sample 2, then sample 0
    assert grid[6, 1, 0] == px(4)  # next row: label 0
