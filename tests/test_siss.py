"""The SISS objective: importance weights, unbiasedness, update rules, baselines (toy models, fast)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives import (
    PairSampler,
    SISSBatch,
    apply_update,
    compute_gradients,
    erasediff_terms,
    importance_log_weights,
    importance_weights,
    naive_deletion_terms,
    neggrad_terms,
    siss_no_is_terms,
    siss_step,
    siss_terms,
)

SCHED = NoiseSchedule()


class LinearDenoiser(nn.Module):
    """ε̂ = W vec(x_t) + b (ignores t and y): the smallest model the objective accepts."""

    def __init__(self, side: int = 2, seed: int = 0):
        super().__init__()
        d = side * side
        self.side = side
        self.lin = nn.Linear(d, d)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.lin.weight.copy_(0.3 * torch.randn(d, d, generator=g))
            self.lin.bias.copy_(0.1 * torch.randn(d, generator=g))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)).view_as(x)


def _batch(n: int, side: int = 2, seed: int = 0, coef_x: float = 1.0, coef_a: float = 0.1) -> SISSBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, side, side, generator=g) * 2 - 1
    a = torch.rand(n, 1, side, side, generator=g) * 2 - 1
    return SISSBatch(x, torch.zeros(n, dtype=torch.long), a, torch.ones(n, dtype=torch.long), coef_x, coef_a)


# ---------------------------------------------------------------------------------------------
# importance weights


def test_weights_match_direct_float64():
    lam = torch.tensor([1e-3, 0.05, 0.3, 0.5, 0.9, 1 - 1e-3], dtype=torch.float64)[:, None]
    diff = torch.linspace(-800, 800, 4001, dtype=torch.float64)[None]
    d_a = torch.rand(diff.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 50
    d_x = d_a + diff
    w_x, w_a = importance_weights(d_x, d_a, lam)
    direct_x = 1.0 / ((1 - lam) + lam * torch.exp(diff))
    direct_a = 1.0 / ((1 - lam) * torch.exp(-diff) + lam)
    for w, direct in ((w_x, direct_x), (w_a, direct_a)):
        ok = torch.isfinite(direct) & (direct > 0)
        assert ok.sum() > 0.5 * ok.numel()  # the comparison covers most of the grid
        torch.testing.assert_close(w[ok], direct[ok], rtol=1e-10, atol=0.0)
        assert torch.isfinite(w).all()
    assert (w_x <= 1 / (1 - lam) + 1e-12).all() and (w_a <= 1 / lam + 1e-12).all()


@settings(max_examples=200, deadline=None)
@given(
    lam=st.floats(1e-3, 1 - 1e-3),
    diff=st.one_of(st.sampled_from([1e4, -1e4, 0.0]), st.floats(-1e4, 1e4)),
    base=st.floats(0, 1e4),
)
def test_weights_never_nan_or_inf(lam, diff, base):
    d_x = torch.tensor([base + diff], dtype=torch.float64)
    d_a = torch.tensor([base], dtype=torch.float64)
    log_wx, log_wa = importance_log_weights(d_x, d_a, lam)
    w_x, w_a = log_wx.exp(), log_wa.exp()
    assert torch.isfinite(w_x).all() and torch.isfinite(w_a).all()
    assert 0 <= float(w_x) <= 1 / (1 - lam) + 1e-9 and 0 <= float(w_a) <= 1 / lam + 1e-9


@pytest.mark.parametrize("lam", [1e-3, 0.5, 1 - 1e-3])
def test_siss_terms_finite_when_components_far_apart(lam):
    """At small t and distant x, a, d_x - d_a reaches 1e4 and more; nothing may turn NaN/inf."""
    model = LinearDenoiser(side=8)
    b = _batch(32, side=8)
    b = SISSBatch(torch.full_like(b.x, -1.0), b.y_x, torch.full_like(b.a, 1.0), b.y_a, 1.0, 0.1)
    t = torch.zeros(32, dtype=torch.long)  # σ_0 = 0.01: |d_x - d_a| ~ 64·(2/0.01)²/2 ≈ 1.3e6
    terms = siss_terms(model, SCHED, b, lam, generator=torch.Generator().manual_seed(0), t=t)
    for v in [terms.loss, terms.retain, terms.forget, *terms.stats.values()]:
        assert torch.isfinite(v).all()
    g_x, g_a = compute_gradients(terms, list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in g_x + g_a)


@pytest.mark.parametrize("lam", [float("nan"), 0.0, 1.0, -0.1, float("inf")])
def test_invalid_lambda_raises(lam):
    with pytest.raises(ValueError):
        siss_terms(LinearDenoiser(), SCHED, _batch(4), lam, generator=torch.Generator())


# ---------------------------------------------------------------------------------------------
# unbiasedness: E_{q_λ}[w_x L_x] = E_{q(m|x)}[L_x]  (Monte Carlo on a linear denoiser)


@pytest.mark.parametrize("lam", [0.2, 0.7])
def test_importance_sampling_is_unbiased(lam):
    """Monte Carlo: E_{q_λ}[w_x L_x] = E_{q(m|x)}[L_x] and E_{q_λ}[w_a L_a] = E_{q(m|a)}[L_a]."""
    model = LinearDenoiser(side=2)
    with torch.no_grad():  # a fixed linear denoiser for which L_x and L_a clearly differ
        model.lin.weight.copy_(0.5 * torch.eye(4))
        model.lin.bias.fill_(0.6)
    x1 = torch.tensor([[0.8, -0.5], [0.2, 0.9]]).view(1, 1, 2, 2)
    a1 = torch.tensor([[-0.7, 0.6], [-0.8, -0.6]]).view(1, 1, 2, 2)
    n, chunks = 20_000, 20
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(n, dtype=torch.long)
    batch = SISSBatch(x1.expand(n, 1, 2, 2), y, a1.expand(n, 1, 2, 2), y, 1.0, 1.0)
    est = []
    with torch.no_grad():
        for _ in range(chunks):
            terms = siss_terms(model, SCHED, batch, lam, generator=g)
            est.append([float(terms.stats["L_x"]), float(terms.stats["L_a"]), float(terms.stats["frac_forget"])])
        est = torch.tensor(est, dtype=torch.float64)
        is_mean, is_se = est.mean(0), est.std(0) / math.sqrt(chunks)
        # direct: m ~ q(m|x) and m ~ q(m|a), no weights
        big = n * chunks
        t = SCHED.sample_timesteps(big, g)
        eps = torch.randn(big, 1, 2, 2, generator=g)
        gam, sig = SCHED.coefficients(t)
        yy = torch.zeros(big, dtype=torch.long)
        per_x = (model(gam * x1 + sig * eps, t, yy) - eps).pow(2).flatten(1).mean(1).double()
        per_a = (model(gam * a1 + sig * eps, t, yy) - eps).pow(2).flatten(1).mean(1).double()
        # a wrong estimator for contrast: the mixture mean of L_x without weights
        z = torch.where((torch.rand(big, generator=g) < lam).view(-1, 1, 1, 1), a1, x1)
        biased = (model(gam * z + sig * eps, t, yy) - (eps + gam / sig * (z - x1))).pow(2).flatten(1).mean(1)
    direct = torch.stack([per_x.mean(), per_a.mean()])
    direct_se = torch.stack([per_x.std(), per_a.std()]) / math.sqrt(big)
    tol = 5 * torch.sqrt(is_se[:2] ** 2 + direct_se**2)
    assert (is_mean[:2] - direct).abs().max() < tol.max(), (is_mean, direct, tol)
    assert abs(float(is_mean[2]) - lam) < 0.01  # the mixture really draws the forget component w.p. λ
    assert abs(float(direct[0] - direct[1])) > 10 * float(tol.max())  # swapped weights would fail
    assert abs(float(biased.double().mean()) - float(direct[0])) > 10 * float(tol.max())


def test_lambda_gradient_reaches_the_loss():
    """A differentiable λ (adaptive SISS, docs/method.md §2) gets a non-zero gradient through the weights."""
    lam = torch.tensor(0.4, requires_grad=True)
    terms = siss_terms(LinearDenoiser(), SCHED, _batch(64), lam, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(terms.loss, lam)
    assert torch.isfinite(grad) and abs(float(grad)) > 1e-6


def test_loss_value_formula():
    b = _batch(16, coef_x=1.2, coef_a=0.2)
    terms = siss_terms(LinearDenoiser(), SCHED, b, 0.5, s=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms.retain, 1.2 * terms.stats["L_x"])
    torch.testing.assert_close(terms.forget, 0.2 * terms.stats["L_a"])
    torch.testing.assert_close(terms.loss, terms.retain - 1.5 * terms.forget)


# ---------------------------------------------------------------------------------------------
# update rules


def _grads_and_update(rule: str, scale: float, max_grad_norm=None, grad_units="mean"):
    model = LinearDenoiser(side=3)
    params = list(model.parameters())

    def terms():
        return siss_terms(model, SCHED, _batch(32, side=3), 0.5, generator=torch.Generator().manual_seed(3))

    g_x, g_a = compute_gradients(terms(), params)
    res = apply_update(model, None, terms(), rule, scale, max_grad_norm=max_grad_norm, grad_units=grad_units)
    forget_part = torch.cat([(p.grad - gx).flatten() for p, gx in zip(params, g_x)])
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    return res, forget_part, flat(g_x), flat(g_a)


def test_rescale_rule_gives_forget_gradient_of_norm_c():
    for c in (0.05, 5.0):
        res, forget_part, _, g_a = _grads_and_update("rescale", c)
        assert math.isclose(float(forget_part.norm()), c, rel_tol=1e-5)
        # the direction is minus the forget gradient (ascent on the forget term)
        cos = float(torch.nn.functional.cosine_similarity(forget_part, -g_a, dim=0))
        assert cos > 0.9999
        assert math.isclose(res.forget_step_norm, c, rel_tol=1e-6)
        assert math.isclose(res.grad_norm_a, float(g_a.norm()), rel_tol=1e-5)


def test_rescale_in_pixel_sum_units_by_default():
    """rescale/clip default to the reference's units: grad = D·g_x/coef_x - c·g_a/||g_a||, D = 9."""
    for c in (0.05, 5.0):
        res, _, g_x, g_a = _grads_and_update("rescale", c, grad_units=None)
        model = LinearDenoiser(side=3)
        terms = siss_terms(model, SCHED, _batch(32, side=3), 0.5, generator=torch.Generator().manual_seed(3))
        apply_update(model, None, terms, "rescale", c, max_grad_norm=None)
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        torch.testing.assert_close(grad, 9 * g_x - c * g_a / g_a.norm(), rtol=1e-5, atol=1e-6)
        assert res.grad_scale_x == 9.0 and res.grad_scale_a == 90.0  # D/coef_x, D/coef_a
        assert math.isclose(res.forget_step_norm, c, rel_tol=1e-5)
    _, part, g_x, g_a = _grads_and_update("ratio", 0.1, grad_units=None)  # ratio keeps the mean units
    assert math.isclose(float(part.norm()), 0.1 * float(g_x.norm()), rel_tol=1e-5)
    with pytest.raises(ValueError, match="grad_units"):
        _grads_and_update("rescale", 1.0, grad_units="pixels")


def test_ratio_scale_clip_rules():
    _, part, g_x, g_a = _grads_and_update("ratio", 0.1)
    assert math.isclose(float(part.norm()), 0.1 * float(g_x.norm()), rel_tol=1e-5)
    _, part, g_x, g_a = _grads_and_update("scale", 0.5)
    torch.testing.assert_close(part, -1.5 * g_a, rtol=1e-5, atol=1e-7)
    big = float(g_a.norm()) * 10
    _, part, g_x, g_a = _grads_and_update("clip", big)  # below c: unchanged
    torch.testing.assert_close(part, -g_a, rtol=1e-5, atol=1e-7)
    small = float(g_a.norm()) / 10
    _, part, g_x, g_a = _grads_and_update("clip", small)  # above c: rescaled to c
    assert math.isclose(float(part.norm()), small, rel_tol=1e-5)


def test_total_norm_clip():
    res, *_ = _grads_and_update("rescale", 50.0, max_grad_norm=1.0)
    assert res.total_grad_norm > 1.0 and res.clip_factor < 1.0
    model = LinearDenoiser(side=3)
    terms = siss_terms(model, SCHED, _batch(32, side=3), 0.5, generator=torch.Generator().manual_seed(3))
    apply_update(model, None, terms, "rescale", 50.0, max_grad_norm=1.0)
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert float(total) <= 1.0 + 1e-5


def test_unknown_rule_and_bad_scale():
    terms = siss_terms(LinearDenoiser(), SCHED, _batch(4), 0.5, generator=torch.Generator())
    with pytest.raises(ValueError):
        apply_update(LinearDenoiser(), None, terms, "nope", 1.0)
    with pytest.raises(ValueError):
        apply_update(LinearDenoiser(), None, terms, "rescale", float("nan"))


def test_siss_step_is_deterministic_and_moves_parameters():
    def run():
        model = LinearDenoiser(side=3)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(7)
        out = [siss_step(model, opt, SCHED, _batch(16, side=3), 0.5, rule="ratio", scale=0.1, generator=g)
               for _ in range(3)]
        return model, out

    (m1, r1), (m2, r2) = run(), run()
    assert [r.as_dict() for r in r1] == [r.as_dict() for r in r2]
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert not torch.equal(m1.lin.weight, LinearDenoiser(side=3).lin.weight)
    keys = set(r1[0].as_dict())
    assert {"L_x", "L_a", "retain_term", "forget_term", "grad_norm_x", "grad_norm_a", "w_x_mean", "w_a_ess",
            "loss"} <= keys


# ---------------------------------------------------------------------------------------------
# pairing and baselines


def _toy_sets():
    g = torch.Generator().manual_seed(0)
    retain_y = torch.arange(10).repeat_interleave(20)
    retain_x = torch.rand(200, 1, 2, 2, generator=g)
    forget_x = torch.rand(5, 1, 2, 2, generator=g)
    return retain_x, retain_y, forget_x, torch.ones(5, dtype=torch.long)


def test_pair_sampler_coefficients_and_labels():
    rx, ry, fx, fy = _toy_sets()
    g = torch.Generator().manual_seed(0)
    full = PairSampler(rx, ry, fx, fy, 8, "drawn", "full")
    assert math.isclose(full.coef_x, 205 / 200) and math.isclose(full.coef_a, 5 / 200)
    drawn = PairSampler(rx, ry, fx, fy, 8, "drawn", "retain")
    assert drawn.coef_x == 1.0
    same = PairSampler(rx, ry, fx, fy, 8, "same-label", "retain")
    b = same.sample(g)
    assert (b.y_x == 1).all() and (b.y_other != 1).all()
    assert math.isclose(same.coef_x + same.coef_other, 1.0)  # shares of X\A
    assert math.isclose(PairSampler(rx, ry, fx, fy, 8, "same-label", "full").coef_x, 25 / 200)
    with pytest.raises(ValueError, match="same-label"):
        PairSampler(rx[ry != 3], ry[ry != 3], fx, torch.full((5,), 3), 8, "same-label")
    terms = siss_terms(LinearDenoiser(), SCHED, b, 0.5, generator=g)
    assert "L_other" in terms.stats and torch.isfinite(terms.loss)


def test_baselines():
    rx, ry, fx, fy = _toy_sets()
    g = torch.Generator().manual_seed(0)
    model = LinearDenoiser()
    naive = naive_deletion_terms(model, SCHED, rx[:16], ry[:16], generator=g)
    assert naive.forget is None
    res = apply_update(model, None, naive, "rescale", 5.0, max_grad_norm=None)
    assert res.grad_norm_a == 0.0 and res.forget_coef == 0.0
    neg = neggrad_terms(model, SCHED, fx, fy, generator=g)
    assert neg.retain is None and float(neg.loss.detach()) < 0
    no_is = siss_no_is_terms(model, SCHED, _batch(16), generator=g)
    assert set(no_is.stats) == {"L_x", "L_a"}
    def ed():
        return erasediff_terms(model, SCHED, rx[:16], ry[:16], fx, fy, generator=torch.Generator().manual_seed(5))

    assert ed().forget_sign == 1.0
    g_x, g_a = compute_gradients(ed(), list(model.parameters()))
    flat_x, flat_a = torch.cat([t.flatten() for t in g_x]), torch.cat([t.flatten() for t in g_a])
    res = apply_update(model, None, ed(), "erasediff", 1.0, max_grad_norm=None)
    expected = max(1.0 - float(flat_x @ flat_a) / float(flat_a @ flat_a), 0.0)
    assert math.isclose(res.forget_coef, expected, rel_tol=1e-4)


def test_neggrad_step_raises_the_forget_loss():
    _, _, fx, fy = _toy_sets()
    model = LinearDenoiser()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def forget_loss():
        with torch.no_grad():
            return float(neggrad_terms(model, SCHED, fx, fy, generator=torch.Generator().manual_seed(9)).forget)

    before = forget_loss()
    for i in range(20):
        apply_update(model, opt, neggrad_terms(model, SCHED, fx, fy, generator=torch.Generator().manual_seed(i)),
                     "scale", 0.0)
    assert forget_loss() > before
