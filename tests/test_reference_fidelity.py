"""The package's SISS update against a line-by-line transcription of the SISS reference code.

Reference: ``losses/ddpm_deletion_loss.py`` (``importance_sampling_with_mixture``) and the training
step of ``delete_tshirt.py`` in github.com/claserken/SISS: per-pixel squared errors SUMMED over the
pixels and divided by the batch size, two backward passes, ``grad = g_x - (c/||g_a||) g_a`` (or the
commented-out clipping variant), then ``clip_grad_norm_(params, 1.0)``. The reference model is
unconditional; the transcription conditions on the label of the drawn component, the package's
choice (a) of docs/method.md §1. Fixed inputs, the shipped ``micro`` model (8x8, D = 64 pixels).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives import SISSBatch, apply_update, compute_gradients, importance_weights, siss_terms
from unlearn_gym.pretrained import load_pretrained

SCHED = NoiseSchedule()
B = 16
coef_x, coef_a = 205 / 200, 5 / 200  # the paper's n/(n-k) (x from the full set) and k/(n-k)


def _inputs(lam: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    u = torch.rand(B, generator=g)
    u[0], u[1] = 0.5 * lam, 0.5 * (1 + lam)  # at least one draw of each component
    return {
        "x": torch.rand(B, 1, 8, 8, generator=g) * 2 - 1,
        "y_x": torch.randint(0, 10, (B,), generator=g),
        "a": torch.rand(B, 1, 8, 8, generator=g) * 2 - 1,
        "y_a": torch.ones(B, dtype=torch.long),
        "noise": torch.randn(B, 1, 8, 8, generator=g),
        "t": torch.linspace(0, 999, B).long(),  # small t (weights 0 or 1/(1-λ)) to large t (both ~1)
        "u": u,
    }


def _flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in gs])


def reference_update(model: nn.Module, inp: dict[str, torch.Tensor], lambd: float, c: float, rule: str) -> dict:
    """The reference SISS step, transcribed (names as in the reference); leaves ``.grad`` set."""
    gamma, sigma = SCHED.gamma[inp["t"]], SCHED.sigma[inp["t"]]
    g4, s4 = gamma[:, None, None, None], sigma[:, None, None, None]
    all_noisy = g4 * inp["x"] + s4 * inp["noise"]  # noise_scheduler.add_noise, same noise for both
    deletion_noisy = g4 * inp["a"] + s4 * inp["noise"]
    all_mask = ~(inp["u"] < lambd)  # reference: torch.rand(batch_size) > lambd
    deletion_mask = ~all_mask
    defensive_mixture_samples = torch.empty_like(all_noisy)
    defensive_mixture_samples[all_mask] = all_noisy[all_mask]
    defensive_mixture_samples[deletion_mask] = deletion_noisy[deletion_mask]
    labels = torch.where(deletion_mask, inp["y_a"], inp["y_x"])
    mixture_noise_preds = model(defensive_mixture_samples, inp["t"], labels)
    epsilon_x = (defensive_mixture_samples - g4 * inp["x"]) / s4
    epsilon_a = (defensive_mixture_samples - g4 * inp["a"]) / s4
    loss_x = (mixture_noise_preds - epsilon_x) ** 2
    loss_a = (mixture_noise_preds - epsilon_a) ** 2
    sum_dims = [1, 2, 3]
    dist_x = torch.sum((defensive_mixture_samples - g4 * inp["x"]) ** 2, dim=sum_dims) / (2 * sigma**2)
    dist_a = torch.sum((defensive_mixture_samples - g4 * inp["a"]) ** 2, dim=sum_dims) / (2 * sigma**2)
    ratio_a_x = torch.exp(dist_x - dist_a)
    ratio_x_a = torch.exp(dist_a - dist_x)
    importance_weight_x = 1 / ((1 - lambd) + lambd * ratio_a_x)
    importance_weight_a = 1 / ((1 - lambd) * ratio_x_a + lambd)
    weighted_loss_x = (importance_weight_x[:, None, None, None] * loss_x).sum() / B
    weighted_loss_a = (importance_weight_a[:, None, None, None] * loss_a).sum() / B
    params = list(model.parameters())
    model.zero_grad(set_to_none=True)
    weighted_loss_x.backward(retain_graph=True)
    grad_x = [p.grad.clone() for p in params]
    weighted_loss_a.backward()
    grad_a = [p.grad.clone() - gx for p, gx in zip(params, grad_x)]
    norm_a = torch.sqrt(sum(torch.norm(g, p=2) ** 2 for g in grad_a))
    scaling_factor = c / norm_a
    if rule == "clip":  # the reference's commented-out variant: rescale only above c
        scaling_factor = scaling_factor if norm_a > c else 1.0
    for p, gx, ga in zip(params, grad_x, grad_a):
        p.grad = gx - scaling_factor * ga
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    return {"w_x": importance_weight_x, "w_a": importance_weight_a, "dist_x": dist_x, "dist_a": dist_a,
            "g_x": _flat(grad_x), "g_a": _flat(grad_a), "grad": _flat([p.grad for p in params])}


def package_update(model: nn.Module, inp: dict[str, torch.Tensor], lam: float, c: float, rule: str) -> dict:
    # the package weights the terms by the paper's coefficients; the reference has none
    batch = SISSBatch(inp["x"], inp["y_x"], inp["a"], inp["y_a"], coef_x=coef_x, coef_a=coef_a)

    def terms():
        return siss_terms(model, SCHED, batch, lam, noise=inp["noise"], t=inp["t"], u=inp["u"])

    params = list(model.parameters())
    g_x, g_a = compute_gradients(terms(), params)
    model.zero_grad(set_to_none=True)
    res = apply_update(model, None, terms(), rule, c, max_grad_norm=1.0)
    return {"g_x": _flat(g_x) / coef_x, "g_a": _flat(g_a) / coef_a, "grad": _flat([p.grad for p in params]),
            "res": res}


@pytest.fixture(scope="module")
def micro() -> nn.Module:
    return load_pretrained("micro").train()


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(u.double(), v.double(), dim=0))


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("rule,c", [("rescale", 5.0), ("rescale", 50.0), ("clip", "below"), ("clip", "above")])
def test_update_matches_reference_transcription(micro, lam, rule, c):
    inp = _inputs(lam)
    d = 64  # C·H·W of micro
    if rule == "clip":  # c on either side of ||g_a|| (pixel-sum units), so both branches are covered
        norm_a = float(reference_update(copy.deepcopy(micro), inp, lam, 1.0, "rescale")["g_a"].norm())
        c = 0.5 * norm_a if c == "below" else 2.0 * norm_a
    ref = reference_update(copy.deepcopy(micro), inp, lam, c, rule)
    ours = package_update(copy.deepcopy(micro), inp, lam, c, rule)
    # importance weights: the package's log-space float64 weights vs the reference's direct formula
    w_x, w_a = importance_weights(ref["dist_x"], ref["dist_a"], lam)
    torch.testing.assert_close(w_x.float(), ref["w_x"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w_a.float(), ref["w_a"], rtol=1e-5, atol=1e-6)
    assert 0 < float(ref["w_x"].sum()) and 0 < float(ref["w_a"].sum())
    # both gradients: the package's pixel-mean gradients times D are the reference's pixel-sum ones
    for key in ("g_x", "g_a"):
        assert _cos(d * ours[key], ref[key]) >= 0.99999
        torch.testing.assert_close(d * ours[key], ref[key], rtol=1e-4, atol=1e-4 * float(ref[key].abs().max()))
    # the whole update: rule with c in pixel-sum units, then the total-norm clip to 1.0
    res = ours["res"]
    assert math.isclose(res.grad_scale_x, d / coef_x) and math.isclose(res.grad_scale_a, d / coef_a)
    assert _cos(ours["grad"], ref["grad"]) >= 0.999
    torch.testing.assert_close(ours["grad"], ref["grad"], rtol=1e-4, atol=1e-4 * float(ref["grad"].abs().max()))
    assert abs(float(ref["grad"].norm()) - 1.0) < 1e-3  # the clip was active, as it is in practice


def test_one_adamw_step_matches_reference(micro):
    """Identical ``.grad`` means identical AdamW steps (lr 5e-5, the reference's optimizer)."""
    inp, lam, c = _inputs(0.5), 0.5, 5.0
    m_ref, m_pkg = copy.deepcopy(micro), copy.deepcopy(micro)
    opt_ref = torch.optim.AdamW(m_ref.parameters(), lr=5e-5)
    opt_pkg = torch.optim.AdamW(m_pkg.parameters(), lr=5e-5)
    reference_update(m_ref, inp, lam, c, "rescale")
    opt_ref.step()
    package_update(m_pkg, inp, lam, c, "rescale")
    opt_pkg.step()
    moved = _flat([p.detach() - q.detach() for p, q in zip(m_ref.parameters(), micro.parameters())])
    diff = _flat([p.detach() - q.detach() for p, q in zip(m_ref.parameters(), m_pkg.parameters())])
    assert float(moved.norm()) > 0 and float(diff.norm()) <= 1e-3 * float(moved.norm())


def test_mean_units_differ_from_the_reference(micro):
    """The old convention (c applied to pixel-mean gradients) is NOT the reference update."""
    inp = _inputs(0.5)
    ref = reference_update(copy.deepcopy(micro), inp, 0.5, 5.0, "rescale")
    model = copy.deepcopy(micro)
    batch = SISSBatch(inp["x"], inp["y_x"], inp["a"], inp["y_a"], coef_x=coef_x, coef_a=coef_a)
    terms = siss_terms(model, SCHED, batch, 0.5, noise=inp["noise"], t=inp["t"], u=inp["u"])
    apply_update(model, None, terms, "rescale", 5.0, max_grad_norm=1.0, grad_units="mean")
    assert _cos(_flat([p.grad for p in model.parameters()]), ref["grad"]) < 0.99


if __name__ == "__main__":  # the numbers quoted in docs/methods.md
    base = load_pretrained("micro").train()
    for lam in (0.1, 0.5, 0.9):
        inp = _inputs(lam)
        ref = reference_update(copy.deepcopy(base), inp, lam, 5.0, "rescale")
        ours = package_update(copy.deepcopy(base), inp, lam, 5.0, "rescale")
        rel = float((ours["grad"] - ref["grad"]).norm() / ref["grad"].norm())
        model = copy.deepcopy(base)
        batch = SISSBatch(inp["x"], inp["y_x"], inp["a"], inp["y_a"], coef_x=coef_x, coef_a=coef_a)
        terms = siss_terms(model, SCHED, batch, lam, noise=inp["noise"], t=inp["t"], u=inp["u"])
        apply_update(model, None, terms, "rescale", 5.0, max_grad_norm=1.0, grad_units="mean")
        old = _cos(_flat([p.grad for p in model.parameters()]), ref["grad"])
        print(f"λ {lam}: cosine(package, reference) {_cos(ours['grad'], ref['grad']):.6f}, relative L2 error"
              f" {rel:.1e}; cosine(pixel-mean units, reference) {old:.3f}")
