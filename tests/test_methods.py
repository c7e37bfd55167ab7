"""Non-RL unlearning methods: registry, every built-in method on `micro`, adaptive-VI gradients, CLI."""

from __future__ import annotations

import csv
import json
import math
from typing import Any, ClassVar

import pytest
import torch

from unlearn_gym.checkpoints import load_checkpoint
from unlearn_gym.cli import main
from unlearn_gym.methods import (
    Method,
    available_methods,
    build_setup,
    get_method,
    parse_assignments,
    register_method,
    run,
)
from unlearn_gym.methods import registry as registry_module
from unlearn_gym.methods.adaptive_vi import LambdaPosterior, draw_lambda, encode_context
from unlearn_gym.objectives import siss_terms
from unlearn_gym.pretrained import load_ddpm_file, load_pretrained

BUILTIN = ("siss", "siss-no-is", "naive-deletion", "neggrad", "erasediff", "adaptive-vi")
FAST = {"preset": "micro", "batch_size": 16}


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.fixture(scope="module")
def theta0() -> torch.Tensor:
    return _flat(load_pretrained("micro"))


def test_registry_knows_the_builtins_and_rejects_unknown_names():
    assert set(BUILTIN) <= set(available_methods())
    with pytest.raises(ValueError, match=r"unknown method 'sfd-magic'.*known methods: .*naive-deletion.*siss"):
        run("sfd-magic", preset="micro", steps=1)
    with pytest.raises(ValueError, match="unknown method"):
        get_method("SISS")


@pytest.mark.parametrize("name", BUILTIN)
def test_each_method_runs_and_changes_the_model(name, theta0):
    result = run(name, task="trousers", steps=3, seed=0, **FAST)
    assert len(result.log) == 3 and not result.diverged
    assert [row["step"] for row in result.log] == [1, 2, 3]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["total_grad_norm"]) for row in result.log)
    moved = float((_flat(result.model) - theta0).norm())
    assert moved > 0, f"{name} did not change the model"
    assert not result.model.training
    if name in ("siss", "adaptive-vi"):
        assert all(0.0 < row["lambda"] < 1.0 for row in result.log)


def test_static_siss_parameters_reach_the_update():
    result = run("siss", steps=2, seed=0, lam=0.2, rule="rescale", scale=5.0, **FAST)
    assert result.column("lambda") == [0.2, 0.2]
    assert result.params["rule"] == "rescale" and result.params["lr"] == 5e-5
    row = result.log[0]
    assert row["grad_scale_x"] == 64.0 and math.isclose(row["forget_step_norm"], 5.0, rel_tol=1e-5)
    default = run("siss", steps=1, seed=0, **FAST)  # the preset's rule: ratio, ρ 0.5, mean units
    assert default.params["rule"] == "ratio" and default.log[0]["grad_scale_x"] == 1.0


def test_erase_task_and_same_seed_same_run():
    state = torch.random.get_rng_state()
    a = run("siss", task="erase-3", steps=2, seed=4, **FAST)
    b = run("siss", task="erase-3", steps=2, seed=4, **FAST)
    assert torch.equal(torch.random.get_rng_state(), state)  # no global seeding
    assert a.log == b.log and torch.equal(_flat(a.model), _flat(b.model))
    c = run("siss", task="erase-3", steps=2, seed=5, **FAST)
    assert c.log != a.log


def test_bad_parameters_and_tasks_give_clear_errors():
    with pytest.raises(ValueError, match=r"does not take \['lamda'\].*'lam'"):
        run("siss", steps=1, lamda=0.3, **FAST)
    with pytest.raises(ValueError, match="lam must be a number in"):
        run("siss", steps=1, lam=1.5, **FAST)
    with pytest.raises(ValueError, match="erasediff rule belongs"):
        run("siss", steps=1, rule="erasediff", scale=1.0, **FAST)
    with pytest.raises(ValueError, match="unknown task"):
        run("siss", task="erase-x", steps=1, **FAST)


def test_a_method_asked_for_a_task_it_cannot_serve():
    @register_method
    class EraseOnly(Method):
        name = "test-erase-only"
        tasks = ("erase-*",)
        params: ClassVar[dict[str, Any]] = {}

        def step(self, i: int) -> dict[str, float]:
            return {"loss": 0.0}

    try:
        with pytest.raises(ValueError, match=r"serves tasks \['erase-\*'\], not 'trousers'.*siss"):
            run("test-erase-only", preset="micro", task="trousers", steps=1)
        assert run("test-erase-only", preset="micro", task="erase-7", steps=1).log == [{"step": 1, "loss": 0.0}]
        with pytest.raises(ValueError, match="is taken"):
            register_method(type("Other", (EraseOnly,), {"name": "test-erase-only"}))
    finally:
        registry_module._REGISTRY.pop("test-erase-only", None)


def test_parse_assignments():
    got = parse_assignments(["lam=0.3", "rule=rescale", "grad-units=none", "hidden=16", "x=true"])
    assert got == {"lam": 0.3, "rule": "rescale", "grad_units": None, "hidden": 16, "x": True}
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["lam"])


# ---------------------------------------------------------------------------------------------
# adaptive-VI λ


def test_siss_loss_reaches_phi_through_lambda():
    """∂L_SISS/∂φ ≠ 0: φ learns from the SISS loss, not only from the KL term (docs/method.md §2)."""
    setup = build_setup("micro", "trousers", seed=0, batch_size=32)
    net = LambdaPosterior()
    ctx = encode_context((0.05, 0.05, 0.2, 0.01))
    draw = draw_lambda(net, ctx, torch.Generator().manual_seed(0), 0.05, 0.95)
    batch = setup.sampler.sample(setup.generator)
    terms = siss_terms(setup.model, setup.schedule, batch, draw.lam, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(terms.loss, list(net.parameters()), allow_unused=True)
    assert all(g is not None for g in grads)
    norm = float(torch.cat([g.flatten() for g in grads]).norm())
    assert math.isfinite(norm) and norm > 1e-8
    # the bug it guards against: a detached λ leaves φ without any SISS gradient
    detached = siss_terms(setup.model, setup.schedule, batch, draw.lam.detach(),
                          generator=torch.Generator().manual_seed(1))
    assert all(g is None for g in torch.autograd.grad(detached.loss, list(net.parameters()), allow_unused=True))


def test_adaptive_vi_updates_theta_and_phi_together(theta0):
    result = run("adaptive-vi", steps=4, seed=0, beta_kl=0.1, **FAST)
    phi0 = get_method("adaptive-vi")(build_setup("micro", "trousers", seed=0, batch_size=16)).net.state_dict()
    phi = result.extra_state["lambda_posterior"]
    assert any(not torch.equal(phi[k], phi0[k]) for k in phi0)
    assert float((_flat(result.model) - theta0).norm()) > 0
    lam = result.column("lambda")
    assert all(0.05 <= v <= 0.95 for v in lam) and len(set(lam)) == 4  # λ is drawn per step
    assert all(row["phi_grad_norm_siss"] > 0 and row["phi_grad_norm_kl"] > 0 for row in result.log)
    assert all(row["kl"] >= 0 for row in result.log)


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_unlearn_writes_model_log_plots_and_evaluation(tmp_path):
    out = tmp_path / "run"
    rc = main(["unlearn", "--method", "siss", "--preset", "micro", "--task", "trousers", "--steps", "3",
               "--seed", "1", "--out", str(out), "--set", "lam=0.3", "--set", "batch_size=16",
               "--eval-samples", "2", "--eval-forget-samples", "4", "--eval-steps", "2", "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [float(r["lambda"]) for r in rows] == [0.3] * 3 and {"L_x", "L_a", "loss"} <= set(rows[0])
    for name in ("lambda.png", "losses.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((out / "tb").iterdir())
    ck = load_checkpoint(out / "model.pt", "unlearned", "micro")
    assert ck["method"] == "siss"
    model = load_ddpm_file(out / "model.pt")
    assert not torch.equal(_flat(model), _flat(load_pretrained("micro")))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "micro" and metrics["summary"]["n_forget_samples"] == 4
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["lam"] == 0.3 and config["steps_done"] == 3 and "unlearn-gym" in config["command"]


def test_cli_unlearn_rejects_an_unknown_method(tmp_path, capsys):
    out = tmp_path / "run"
    try:
        rc = main(["unlearn", "--method", "nope", "--preset", "micro", "--steps", "1", "--out", str(out),
                   "--eval-samples", "0", "--quiet"])
    except ValueError as e:  # a main() that lets errors through
        message = str(e)
    else:  # a main() that prints "error: ..." and returns non-zero
        assert rc != 0
        message = capsys.readouterr().err
    assert "known methods: adaptive-vi" in message
    assert not out.exists()


def test_setup_loads_the_model_of_the_data_ratio():
    from unlearn_gym.methods.setup import build_setup
    from unlearn_gym.pretrained import load_pretrained

    heavy = build_setup("micro", "trousers", data_ratio=0.5, seed=0)
    want = load_pretrained("micro", ratio=0.5).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in heavy.model.state_dict().items())


def test_a_runs_evaluation_reference_has_its_contamination_ratio(tmp_path, load_pretrained_calls):
    """evaluate_run compares with the pretrained model the run started from (ratio 0.5 here)."""
    from unlearn_gym.methods import run
    from unlearn_gym.methods.outputs import evaluate_run

    result = run("siss", preset="micro", steps=1, seed=0, batch_size=8, data_ratio=0.5)
    calls = load_pretrained_calls
    calls.clear()  # only the evaluation's loads
    evaluate_run(result, tmp_path, samples_per_label=2, forget_samples=4, steps=2, progress=False)
    assert calls[-1]["ratio"] == 0.5 and calls[-1]["model"] == "ddpm"
