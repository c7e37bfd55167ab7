"""SFD (one-step, score alignment, adaptive multi-class) and the SISS+SFD hybrid on `micro`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from unlearn_gym.checkpoints import CheckpointError
from unlearn_gym.cli import main
from unlearn_gym.diffusion import OneStepGenerator, is_one_step, one_step_images
from unlearn_gym.eval.evaluate import evaluate
from unlearn_gym.methods import build_setup, get_method, run
from unlearn_gym.methods.outputs import erase_summary
from unlearn_gym.methods.score_alignment import align_loss, forget_digit, resolve_override
from unlearn_gym.methods.sfd import CONFIGS, PRESET_CONFIGS, resolve_config
from unlearn_gym.pretrained import load_ddpm_file, load_pretrained

FAST = {"preset": "micro", "batch_size": 16}
POOL = {"pool_per_class": 4, "pool_steps": 3}  # a tiny teacher pool keeps the alignment tests fast


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.fixture(scope="module")
def theta0() -> torch.Tensor:
    return _flat(load_pretrained("micro"))


class Spy(torch.nn.Module):
    """Wraps a network and records the labels of every call."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.labels = net, []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.labels.append(y.clone())
        return self.net(x, t, y)


# ------------------------------------------------------------------ every method runs and moves the model


@pytest.mark.parametrize(("name", "task", "params"), [
    ("sfd", "erase-3", {"output": "generator"}),
    ("sfd", "erase-3", {}),  # the EMA output moves too (its first update copies G)
    ("sfd-align", "erase-3", POOL),
    ("sfd-align-adaptive", "erase-3", POOL),
    ("hybrid", "trousers", {}),
    ("hybrid", "erase-3", {}),
])
def test_each_method_runs_and_changes_the_model(name, task, params, theta0):
    result = run(name, task=task, steps=2, seed=0, **FAST, **params)
    assert len(result.log) == 2 and not result.diverged
    assert all(math.isfinite(row["loss"]) for row in result.log)
    assert float((_flat(result.model) - theta0).norm()) > 0, f"{name} did not change the model"
    assert not result.model.training
    if name == "sfd":
        assert isinstance(result.model, OneStepGenerator) and result.model.t_star == 440
    if name == "hybrid":
        assert {"L_x", "L_a", "L_distill"} <= set(result.log[0])
        assert ("L_align" in result.log[0]) == (task != "trousers")


def test_sfd_reference_config_and_the_caller_wins():
    cls = get_method("sfd")
    assert cls.params["alpha"] == 1.2 and cls.params["t_star"] == 440
    assert (cls.params["t_min"], cls.params["t_max"]) == (38, 711)
    ref = CONFIGS["reference"]
    assert (ref["lr"], ref["ema_decay"], ref["forget_weight"], ref["fake_steps"]) == (1e-5, 0.9999, 0.01, 1)
    method = cls(build_setup("micro", "erase-3", seed=0, batch_size=8, lr=1e-5, max_grad_norm=None),
                 config="reference")
    assert method.opt_g.defaults["betas"] == (0.0, 0.999) and method.opt_g.defaults["lr"] == 1e-5
    assert (method.p["ema_decay"], method.p["forget_weight"], method.p["config"]) == (0.9999, 0.01, "reference")
    result = run("sfd", task="erase-3", steps=1, seed=0, config="reference", **FAST)
    assert result.params["lr"] == 1e-5 and result.params["max_grad_norm"] is None  # SFD's own defaults
    assert run("sfd", task="erase-3", steps=1, seed=0, lr=3e-5, **FAST).params["lr"] == 3e-5
    with pytest.raises(ValueError, match="unknown sfd config"):
        run("sfd", task="erase-3", steps=1, config="gpu", **FAST)


def test_sfd_micro_defaults_are_the_measured_cpu_schedule():
    micro = CONFIGS["cpu"]
    assert PRESET_CONFIGS["micro"] == "cpu"
    assert micro["ema_half_life"] == 0.1  # the EMA's half-life: 10 % of the run, whatever its length
    result = run("sfd", task="erase-3", steps=1, seed=0, **FAST)
    assert result.params["config"] == "cpu" and result.params["lr"] == micro["lr"]
    assert result.params["forget_weight"] == micro["forget_weight"]
    for steps in (2, 30):  # half-life 10 % of the run (at least one step)
        decay = run("sfd", task="erase-3", steps=steps, seed=0, **FAST).params["ema_decay"]
        assert decay ** max(1.0, 0.1 * steps) == pytest.approx(0.5)
    setup = build_setup("micro", "erase-3", seed=0, batch_size=16)  # no run length: the measured 300 steps
    assert get_method("sfd")(setup).p["ema_decay"] == pytest.approx(0.5 ** (1 / 30))
    assert run("sfd", task="erase-3", steps=1, seed=0, forget_weight=0.5, **FAST).params["forget_weight"] == 0.5
    assert resolve_config("tiny", {})["config"] == "cpu" and resolve_config("mnist28", {})["config"] == "reference"
    assert resolve_config("micro", {"config": "reference", "ema_decay": 0.5})["ema_decay"] == 0.5


def test_sfd_generator_moves_away_from_its_initialisation(theta0):
    method = get_method("sfd")(build_setup("micro", "erase-3", seed=0, batch_size=16, lr=1e-4, max_grad_norm=None))
    dist = []
    for i in range(6):
        method.step(i)
        dist.append(float((_flat(method.generator_net) - theta0).norm()))
    assert 0 < dist[0] < dist[-1]  # it keeps moving, not one jump
    assert dist[-1] > 1e-3 * float(theta0.norm())
    assert float((_flat(method.ema.module) - theta0).norm()) > 0


@pytest.mark.parametrize("decay", [0.0, 0.7])
def test_sfd_ema_follows_the_generator_at_the_configured_rate(decay):
    method = get_method("sfd")(build_setup("micro", "erase-3", seed=0, batch_size=8, lr=1e-4, max_grad_norm=None),
                               ema_decay=decay, output="ema")
    expected = None
    for i in range(4):
        method.step(i)
        theta = _flat(method.generator_net)
        # the first update copies G; then e_k = d e_(k-1) + (1 - d) G_k
        expected = theta if expected is None else decay * expected + (1 - decay) * theta
    ema = _flat(method.ema.module)
    assert torch.allclose(ema, expected, atol=1e-6)
    assert torch.allclose(_flat(method.output_model().net), ema)
    if decay > 0:
        assert not torch.allclose(ema, _flat(method.generator_net))  # it lags behind G


# ------------------------------------------------------------------ SFD one-step: shapes and the override class


def test_one_step_generator_output_shape_and_range():
    net = load_pretrained("micro")
    gen = OneStepGenerator(net)
    labels = torch.arange(10)
    z = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = gen.generate(labels, z)
    assert x.shape == (10, 1, 8, 8) and x.min() >= -1 and x.max() <= 1 and is_one_step(gen)
    assert not is_one_step(net)
    x_g = one_step_images(net, gen.schedule, z, labels)  # the training path keeps its gradient
    assert x_g.shape == (10, 1, 8, 8) and x_g.requires_grad
    with pytest.raises(ValueError, match="one latent per label"):
        gen.generate(labels, z[:3])


@pytest.mark.parametrize("override", [None, 5, "random"])
def test_sfd_forget_term_queries_the_teacher_with_the_override_class(override):
    method = get_method("sfd")(build_setup("micro", "erase-3", seed=0, batch_size=64), override=override)
    method.teacher, method.fake = Spy(method.teacher), Spy(method.fake)
    method.generator_step()
    (y_teacher,), (y_fake,) = method.teacher.labels, method.fake.labels
    forget = y_fake == 3
    assert forget.any() and (~forget).any()
    assert torch.equal(y_teacher[~forget], y_fake[~forget])  # retain classes: the same class for both
    if override == "random":
        assert (y_teacher[forget] != 3).all()  # a retain class per forget sample
    else:
        c_o = 4 if override is None else 5  # default: the next digit (skipping label 1)
        assert (y_teacher[forget] == c_o).all()


def test_score_alignment_forget_term_uses_the_override_class_and_the_mixture():
    setup = build_setup("micro", "erase-3", seed=0, batch_size=8)
    teacher = Spy(load_pretrained("micro"))
    x0 = torch.zeros(8, 1, 8, 8)
    loss, _ = align_loss(setup.model, teacher, setup.schedule, x0, 3, generator=torch.Generator().manual_seed(0),
                         teacher_labels=torch.full((8,), 7))
    assert loss.requires_grad and teacher.labels[-1].unique().tolist() == [7]
    retain = [c for c in range(10) if c != 3]
    loss, stats = align_loss(setup.model, teacher, setup.schedule, x0, 3, generator=torch.Generator().manual_seed(0),
                             mixture_classes=retain, tau=1.0)
    assert sorted(teacher.labels[-1].unique().tolist()) == retain  # every retain class, never c_f
    assert 0 < float(stats["mix_entropy"]) <= math.log(9) + 1e-6 and 1 / 9 - 1e-6 <= float(stats["mix_weight_max"]) <= 1
    with pytest.raises(ValueError, match="exactly one"):
        align_loss(setup.model, teacher, setup.schedule, x0, 3, generator=torch.Generator())


# ------------------------------------------------------------------ evaluation of the one-step generator


def test_the_evaluation_suite_samples_and_scores_a_one_step_generator():
    pretrained = load_pretrained("micro")
    report = evaluate(OneStepGenerator(pretrained), pretrained, "micro", samples_per_label=3, forget_samples=3,
                      steps=2, kid_subsets=2, progress=False)
    assert report.config["model_sampler"] == "one-step generator"
    assert report.samples["model"].shape == (30, 1, 8, 8)
    assert report.summary["retain_accuracy"] is not None and report.summary["retain_ssim"] is not None
    e = erase_summary(report.per_class, 3)
    assert e["erased_digit"] == 3 and 0 <= e["erased_accuracy"] <= 1 and e["min_other_digit_accuracy"] <= 1


def test_cli_unlearn_sfd_writes_metrics_and_a_loadable_generator(tmp_path, capsys):
    out = tmp_path / "sfd"
    rc = main(["unlearn", "--method", "sfd", "--preset", "micro", "--task", "erase-3", "--steps", "2", "--out",
               str(out), "--set", "batch_size=8", "--set", "output=generator", "--eval-samples", "2",
               "--eval-forget-samples", "2", "--eval-steps", "2", "--no-tensorboard", "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model_sampler"] == "one-step generator"
    assert metrics["summary"]["erased_digit"] == 3 and "erased_accuracy" in metrics["reference_summary"]
    assert "erased digit 3" in capsys.readouterr().out
    model = load_ddpm_file(out / "model.pt")
    assert isinstance(model, OneStepGenerator)
    assert model.generate(torch.arange(2), torch.randn(2, 1, 8, 8)).shape == (2, 1, 8, 8)
    with pytest.raises(CheckpointError, match="one-step generator, not a DDPM"):
        load_pretrained("micro", out / "model.pt")


# ------------------------------------------------------------------ task restrictions and bad parameters


@pytest.mark.parametrize("name", ["sfd", "sfd-align", "sfd-align-adaptive"])
def test_sfd_methods_refuse_the_trousers_task(name):
    with pytest.raises(ValueError, match=r"serves tasks \['erase-\*'\], not 'trousers'.*hybrid"):
        run(name, task="trousers", steps=1, **FAST)


def test_clear_errors_for_bad_sfd_parameters():
    with pytest.raises(ValueError, match=r"SFD needs a class to erase.*hybrid"):
        forget_digit("trousers")
    assert resolve_override(0, None) == 2 and resolve_override(9, None) == 0 and resolve_override(6, None) == 7
    with pytest.raises(ValueError, match="override must be a retain class"):
        run("sfd", task="erase-3", steps=1, override=3, **FAST)
    with pytest.raises(ValueError, match="output must be one of"):
        run("sfd", task="erase-3", steps=1, output="last", **FAST)
    with pytest.raises(ValueError, match="fake_steps must be an integer"):
        run("sfd", task="erase-3", steps=1, fake_steps=0, **FAST)
    with pytest.raises(ValueError, match="t_min <= t_max"):
        run("sfd", task="erase-3", steps=1, t_min=700, t_max=100, **FAST)
    with pytest.raises(ValueError, match="align_weight must be > 0"):
        run("sfd-align", task="erase-3", steps=1, align_weight=0.0, **FAST)
    with pytest.raises(ValueError, match="'trousers' has no class to override"):
        run("hybrid", task="trousers", steps=1, override=2, **FAST)
