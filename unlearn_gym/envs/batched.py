"""One SISS update of K runs as one computation (``torch.func``), for the native vector env.

:func:`batched_siss_update` does for K :class:`~unlearn_gym.envs.state.RunState` of one shared
bundle what K calls of :func:`~unlearn_gym.objectives.update.siss_step` do: each run draws its batch
and its noise from its own generator in the single env's order (so the random numbers are the same),
then one forward pass under ``vmap`` on the runs' stacked parameters and two backward passes of
plain autograd on the stacked tensors give every run's retain and forget gradients, and the update
rule, the total-norm clip and AdamW (each run's own step count and moments; torch's fused kernel)
act on the stacked tensors in place. The stack (:class:`StackedRuns`) is the master copy: each
run's parameters and AdamW moments are views of its slice, so nothing is stacked or written back
per run. The arithmetic is the same but ordered differently (batched kernels, norms summed over
stacked tensors), so a run follows the single env's trajectory within float tolerance, not bit for
bit (tests/test_vector.py).

Supported: the env's rules ``rescale``, ``ratio``, ``scale``, ``clip``; ``pairing="drawn"`` (the
``same-label`` batches' third sample set falls back to the loop).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import functional_call, vmap
from torch.optim.adamw import adamw

from unlearn_gym.envs.dynamics import Shared
from unlearn_gym.envs.state import RunState
from unlearn_gym.objectives.batches import SISSBatch
from unlearn_gym.objectives.family import objectives_for
from unlearn_gym.objectives.update import _EPS, UpdateResult, check_rule, default_grad_units
from unlearn_gym.objectives.vae import VAENoise

BATCHED_RULES = ("rescale", "ratio", "scale", "clip")


def supports(shared: Shared) -> bool:
    """Whether :func:`batched_siss_update` can step runs of this bundle."""
    c = shared.settings
    return c.rule in BATCHED_RULES and shared.sampler.other_images is None


class _Functional:
    """A model called with given (stacked-slice) parameters, with the methods the objectives use."""

    def __init__(self, model: torch.nn.Module, params: dict[str, torch.Tensor]):
        self._model, self._params = model, params

    def __call__(self, *args):
        return functional_call(self._model, self._params, args)

    def prior_latents(self, noise: torch.Tensor) -> torch.Tensor:
        return self._model.prior_latents(noise)


def _random_inputs(shared: Shared, g: torch.Generator, shape: torch.Size,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """A run's noise (and timesteps), drawn from its generator after its batch, in the single env's order.

    :param shared: the run's shared bundle.
    :param g: the run's generator.
    :param shape: the shape of one batch of images.
    :param device: where the batch lives.
    """
    from unlearn_gym.device import rand, randn

    if isinstance(shared.schedule, VAENoise):  # ε, u, ξ (vae_siss_terms)
        noise = randn(shape, g, device)
        u = rand(shape[:1], g, device)
        return {"noise": noise, "u": u, "xi": randn(shape, g, device)}
    t = shared.schedule.sample_timesteps(shape[0], g, device)  # t, ε, u (siss_terms)
    noise = randn(shape, g, device)
    return {"t": t, "noise": noise, "u": rand(shape[:1], g, device)}


class StackedRuns:
    """The parameters and AdamW moments of N runs held as stacked ``(N, ...)`` tensors (the master copy).

    Each run's model parameters are views of its slice, and so are the moments in its optimizer's
    state once :meth:`sync` has bound them, so a batched update writes every run's new weights and
    moments with one in-place operation per parameter, with no per-run stacking or writing back.
    Whatever else touches a run keeps working: a restore to θ_0 copies into the views, torch's AdamW
    (the loop path) updates the bound moments in place, and a run whose optimizer state was cleared
    or made anew is re-bound (zeros, step 0) or copied in (a state torch made) at its next batched step.

    :param states: the runs (all of one architecture); their parameters become views of the stack.
    """

    def __init__(self, states: Sequence[RunState]):
        self.states = list(states)
        base = self.states[0].model
        self.names = [n for n, p in base.named_parameters() if p.requires_grad]
        self._params = [dict(st.model.named_parameters()) for st in self.states]
        with torch.no_grad():
            self.params = {n: torch.stack([ps[n].detach() for ps in self._params]) for n in self.names}
            self.exp_avg = {n: torch.zeros_like(t) for n, t in self.params.items()}
            self.exp_avg_sq = {n: torch.zeros_like(t) for n, t in self.params.items()}
        self._scratch: dict[str, torch.Tensor] = {}
        # one float32 step count per (run, parameter), each a 0-d view torch's AdamW can increment
        self.step = torch.zeros(len(self.states), len(self.names))
        for i, ps in enumerate(self._params):
            for n in self.names:
                ps[n].data = self.params[n][i]

    def scratch(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A buffer reused from step to step, with the shape, strides and dtype of ``like``.

        A batched update's temporaries live here: a fresh tensor of 4 B per parameter per run each
        step costs page faults on the CPU (glibc returns the freed heap top to the kernel).

        :param name: parameter name (one buffer per parameter).
        :param like: ``(runs, ...)``, the runs' tensor of that parameter whose layout it takes (dense,
            runs outermost).
        """
        buf = self._scratch.get(name)
        if buf is None or buf.stride() != like.stride() or buf.dtype != like.dtype:
            full = (len(self.states), *like.shape[1:])
            buf = self._scratch[name] = torch.empty_strided(full, like.stride(), dtype=like.dtype, device=like.device)
        return buf[: like.shape[0]]

    def adopt_layout(self, grads: dict[str, torch.Tensor]) -> None:
        """Lay the stacked parameters and moments out as the batched gradients come (once per parameter).

        The backward pass of a linear layer under ``vmap`` gives its weight's gradient in the
        transposed layout (strides ``(o·i, 1, o)`` for ``(N, o, i)``). Held in the gradients' layout,
        the combination of the two gradients and AdamW are same-layout elementwise passes instead of
        a transposing copy each step. The values do not change; the runs' parameters stay views of
        the (re-laid) stack and bound optimizer states are re-bound to the new moments.

        :param grads: one batched gradient per parameter, ``(runs, ...)`` (dense, runs outermost).
        """
        for n in self.names:
            g, old = grads[n], self.params[n]
            dense = g.stride()[0] == old[0].numel() and _dense(g)
            if g.stride() == old.stride() or not dense:
                continue
            old_m, old_v = self.exp_avg[n], self.exp_avg_sq[n]
            with torch.no_grad():
                for attr, t in (("params", old), ("exp_avg", old_m), ("exp_avg_sq", old_v)):
                    getattr(self, attr)[n] = _with_strides(t, g.stride())
            for i, ps in enumerate(self._params):
                ps[n].data = self.params[n][i]
                state = self.states[i].optimizer.state.get(ps[n])
                if state and state["exp_avg"].data_ptr() == old_m[i].data_ptr():  # bound: re-bind
                    state["exp_avg"], state["exp_avg_sq"] = self.exp_avg[n][i], self.exp_avg_sq[n][i]

    def _bound(self, i: int) -> bool:
        state = self.states[i].optimizer.state.get(self._params[i][self.names[0]])
        return bool(state) and state["exp_avg"].data_ptr() == self.exp_avg[self.names[0]][i].data_ptr()

    def sync(self, idx: Sequence[int]) -> None:
        """Bind the optimizer states of runs ``idx`` to the stacked moments (see the class docstring).

        :param idx: run indices.
        """
        for i in idx:
            ps, opt = self._params[i], self.states[i].optimizer
            if ps[self.names[0]].data_ptr() != self.params[self.names[0]][i].data_ptr():
                raise RuntimeError("a run's parameters were replaced, not updated in place; rebuild the stack")
            if self._bound(i):
                continue
            with torch.no_grad():
                for j, n in enumerate(self.names):
                    state = opt.state.get(ps[n])
                    if state:  # made by torch's AdamW (the loop path): copy it in
                        self.exp_avg[n][i].copy_(state["exp_avg"])
                        self.exp_avg_sq[n][i].copy_(state["exp_avg_sq"])
                        self.step[i, j] = float(state["step"])
                    else:  # cleared (a restore) or a new optimizer: AdamW's fresh state
                        self.exp_avg[n][i].zero_()
                        self.exp_avg_sq[n][i].zero_()
                        self.step[i, j] = 0.0
                    opt.state[ps[n]] = {"step": self.step[i, j], "exp_avg": self.exp_avg[n][i],
                                        "exp_avg_sq": self.exp_avg_sq[n][i]}


def batched_siss_update(shared: Shared, stack: StackedRuns, idx: Sequence[int], lams: Sequence[float],
                        scales: Sequence[float]) -> list[UpdateResult]:
    """One SISS update of the runs ``idx`` of ``stack`` (all of ``shared``'s settings), as one computation.

    :param shared: their shared bundle.
    :param stack: the stacked runs (their models and AdamW states are updated in place).
    :param idx: the indices of the runs that step, in ``stack``.
    :param lams: λ of each of them.
    :param scales: the rule's constant of each.
    :returns: each run's :class:`UpdateResult`, as ``siss_step`` returns it.
    """
    c = shared.settings
    for sc in scales:
        check_rule(c.rule, sc)
    family = objectives_for(shared.schedule)
    idx = list(idx)
    states = [stack.states[i] for i in idx]
    stack.sync(idx)
    base = states[0].model
    names = stack.names
    whole = idx == list(range(len(stack.states)))
    sel = None if whole else torch.tensor(idx)
    # each run draws its batch, then its noise, from its own generator (the single env's order)
    drawn = shared.sampler.sample_many([st.generator for st in states])
    stacked_batch = {"x": drawn.x, "y_x": drawn.y_x, "a": drawn.a, "y_a": drawn.y_a}
    crns = [_random_inputs(shared, st.generator, drawn.x.shape[1:], drawn.x.device) for st in states]
    stacked_crn = {key: torch.stack([d[key] for d in crns]) for key in crns[0]}
    params = stack.params if whole else {n: t.index_select(0, sel) for n, t in stack.params.items()}
    buffers = {n: b for n, b in base.named_buffers()}
    lam_t = torch.tensor(list(lams), dtype=torch.float64)
    sampler = shared.sampler
    coef_x, coef_a = sampler.coef_x, sampler.coef_a

    def one(p, bt, crn, lam):
        batch = SISSBatch(x=bt["x"], y_x=bt["y_x"], a=bt["a"], y_a=bt["y_a"], coef_x=coef_x, coef_a=coef_a)
        terms = family.siss(_Functional(base, {**p, **buffers}), shared.schedule, batch, lam, s=c.s, **crn)
        stats = {key: v.detach().float().reshape(()) for key, v in terms.stats.items()}
        return terms.retain, terms.forget, terms.loss.detach(), stats

    # the forward under vmap, the two backward passes by plain autograd on the stacked (physical)
    # tensors: copy i's terms depend on its own slice only, so the gradient of the sum over copies
    # of a term is, slice by slice, each copy's own gradient (torch's own backward kernels, no
    # functorch transform in the backward passes)
    leaves = {n: t.detach().requires_grad_() for n, t in params.items()}
    with torch.enable_grad():
        retain, forget, loss, stats = vmap(one)(leaves, stacked_batch, stacked_crn, lam_t)
        ps = [leaves[n] for n in names]
        g_x = dict(zip(names, torch.autograd.grad(retain.sum(), ps, retain_graph=True, materialize_grads=True)))
        g_a = dict(zip(names, torch.autograd.grad(forget.sum(), ps, materialize_grads=True)))
    retain, forget = retain.detach(), forget.detach()
    stack.adopt_layout(g_x)
    # apply_update on stacked tensors (per run: norms, the rule's coefficient, clip)
    retain_norm, forget_norm = coef_x + sampler.coef_other, coef_a
    elements = int(stacked_batch["x"][0, 0].numel())
    sx = sa = 1.0
    if default_grad_units(c.rule) == "sum":
        sx = elements / retain_norm if retain_norm > 0 else 0.0
        sa = elements / forget_norm if forget_norm > 0 else 0.0

    def rest(g):  # every dim but the runs'
        return tuple(range(1, g.dim()))

    def norm(gs):  # per run: the norm over every parameter (the norm of the per-tensor norms, as torch's clip)
        return torch.stack([torch.linalg.vector_norm(g, dim=rest(g)) for g in gs.values()], 1).norm(dim=1)

    nx, na = norm(g_x), norm(g_a)
    # vecdot's arithmetic, its products written into the stack's scratch (a fresh 4 B per parameter
    # per run each step costs page faults on the CPU)
    dot = sum(torch.mul(g_x[n], g_a[n], out=stack.scratch(n, g_x[n])).sum(rest(g_x[n])) for n in names)
    scale_t = torch.tensor(list(scales), dtype=nx.dtype)
    ex, ea = sx * nx, sa * na
    safe = torch.where(ea > _EPS, ea, torch.ones_like(ea))
    coef = {"rescale": scale_t / safe, "ratio": scale_t * ex / safe, "scale": 1.0 + scale_t,
            "clip": torch.clamp(scale_t / safe, max=1.0)}[c.rule]
    coef = torch.where(ea > _EPS, coef, torch.zeros_like(coef))
    sign = -1.0  # SISS ascends the forget term

    def per_run(v, like):
        return v.view(-1, *([1] * (like.dim() - 1)))

    fc = sign * coef * sa

    # the combined gradient in g_x's own memory (fresh from autograd, not needed after; in the stack's
    # layout once adopted, so AdamW reads it as it is)
    def into_retain(n):
        gx = g_x[n]
        return (gx.mul_(sx) if sx != 1.0 else gx).addcmul_(per_run(fc, g_a[n]), g_a[n])

    combined = {n: into_retain(n) for n in names}
    total = norm(combined)
    clip = torch.ones_like(total)
    if c.max_grad_norm is not None:  # scale each run's combined gradient in place
        clip = torch.where(total > c.max_grad_norm, c.max_grad_norm / (total + 1e-6), clip)
        if bool((clip != 1.0).any()):  # (a factor of 1 changes nothing: no pass when no run clips)
            for n in names:
                combined[n].mul_(per_run(clip, combined[n]))
    _adamw(stack, idx, states[0].optimizer, combined)
    # floats, once
    cols = [loss, retain, forget, nx, na, dot, coef, total, clip, *stats.values()]
    rows = torch.stack([v.double() for v in cols], 1).tolist()
    out = []
    for r in rows:
        lo, rv, fv, nxv, nav, dv, cf, tot, cl = r[:9]
        st_vals = dict(zip(stats, r[9:]))
        cos = dv / (nxv * nav) if nxv > _EPS and nav > _EPS else 0.0
        out.append(UpdateResult(
            loss=lo, retain_term=rv, forget_term=fv, L_r=rv / retain_norm, L_f=fv / forget_norm,
            grad_norm_x=nxv, grad_norm_a=nav, grad_norm_r=nxv / retain_norm, grad_norm_f=nav / forget_norm,
            forget_coef=cf, forget_step_norm=cf * sa * nav, total_grad_norm=tot,
            clip_factor=cl, grad_scale_x=sx, grad_scale_a=sa,
            grad_cosine=cos, stats=st_vals))
    return out


def _spans(idx: Sequence[int], steps: Sequence[float]) -> list[tuple[int, int]]:
    """The runs ``idx`` cut into spans ``[lo, hi)`` of positions whose runs are consecutive in the
    stack and have taken the same number of AdamW steps (one fused AdamW call each)."""
    out, lo = [], 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1 or steps[idx[k]] != steps[idx[lo]]:
            out.append((lo, k))
            lo = k
    return out


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill a block of memory exactly once (contiguous up to a permutation of dims)."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _memory_order(t: torch.Tensor) -> list[int]:
    """``t``'s dims from the largest stride to the smallest (``t.permute`` of it is contiguous when ``t`` is dense)."""
    return sorted(range(t.dim()), key=lambda d: (-t.stride(d), d))


def _with_strides(t: torch.Tensor, strides: tuple[int, ...]) -> torch.Tensor:
    """``t`` itself if it has these strides, else a copy of it laid out with them."""
    if t.stride() == strides:
        return t
    return torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device).copy_(t)


def _adamw(stack: StackedRuns, idx: Sequence[int], opt: torch.optim.Optimizer,
           grads: dict[str, torch.Tensor]) -> None:
    """torch's AdamW step on the stacked tensors (each run's own step count and moments), in place.

    Runs that are neighbours in the stack and have taken as many steps share their bias corrections,
    so each such span is one call of torch's fused AdamW on views of the stack (one pass over the
    parameters, moments and gradients; usually one span: the copies reset together).

    :param stack: the stacked runs.
    :param idx: the indices of the runs that step (in any order; increasing makes the fewest spans).
    :param opt: one of their optimizers (for lr, weight decay, betas, eps: one bundle's settings).
    :param grads: their gradients, ``(len(idx), ...)`` per parameter.
    """
    group = opt.param_groups[0]
    (b1, b2), names = group["betas"], stack.names
    steps = stack.step[:, 0].tolist()  # every parameter of a run has taken the same number of steps
    # AdamW is elementwise: each parameter's four tensors (one layout) go in with their dims in memory
    # order, so that the fused kernel sees contiguous tensors
    order = {n: _memory_order(stack.params[n]) for n in names}
    with torch.no_grad():
        for lo, hi in _spans(idx, steps):
            rows = slice(idx[lo], idx[lo] + hi - lo)
            adamw([stack.params[n][rows].permute(order[n]) for n in names],
                  [_with_strides(grads[n][lo:hi], stack.params[n].stride()).permute(order[n]) for n in names],
                  [stack.exp_avg[n][rows].permute(order[n]) for n in names],
                  [stack.exp_avg_sq[n][rows].permute(order[n]) for n in names], [],
                  # the fused kernel reads the step counts where the parameters live
                  [torch.tensor(steps[idx[lo]], device=stack.params[n].device) for n in names], fused=True,
                  amsgrad=False, beta1=b1, beta2=b2, lr=group["lr"], weight_decay=group["weight_decay"],
                  eps=group["eps"], maximize=False)
            stack.step[rows] += 1.0
