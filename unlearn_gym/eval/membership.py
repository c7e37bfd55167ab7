"""Loss-threshold membership inference on the forget set (docs/forgetting.md).

The attack (Yeom et al.'s loss threshold, as SecMI and the diffusion loss attacks use it): a model
tends to have a lower loss on the images it was trained on than on images of the same distribution
it never saw. Members are the forget images (the trousers labelled "1" in the training mix);
non-members are held-out real trousers (Fashion-MNIST's test split, ``data.test_trousers``, which no
model of the package ever trains on). Both are conditioned on label 1, as the forget images were
during training. The score of an image is minus its per-example loss; the result is the ROC AUC of
members against non-members (0.5: the attacker cannot tell them apart).

For a class-erasure task ``erase-<d>`` (``task=``) the members are the task's forget set, every real
training image of digit ``d`` (:func:`~unlearn_gym.data.task_split`), the non-members the held-out
test digits ``d`` (``data.test_images[data.test_labels == d]``), both conditioned on label ``d`` and
not flipped (training never flipped digits); the target is the erase-retrained model's AUC.

Per-example loss:

* **DDPM**: the denoising loss ``||ε_θ(x_t, t, 1) - ε||²`` (per-pixel mean) at a few fixed timesteps
  ``t``, with fixed noise: the noise of image ``i`` at timestep ``t`` and draw ``j`` comes from one
  seeded generator, so two models are scored with the same noise (common random numbers) and the
  difference of their AUCs is paired. The loss is averaged over ``n_draws`` noise draws and over the
  image and its horizontal flip (training flipped the trousers with probability 0.5).
* **VAE**: its per-example negative ELBO (:func:`~unlearn_gym.objectives.vae.vae_per_sample_loss`)
  at a few encoder noise levels σ (0.3 is the training level), same fixed-noise convention.

Two attacks are reported: ``mean`` (the loss averaged over all timesteps / levels: chosen before
seeing the data) and ``best`` (the single timestep with the highest AUC: an upper bound, optimistic
because the timestep is chosen on the same images).

Noise: the AUC's 95 % CI is a stratified bootstrap over the images (members and non-members
resampled separately, ``n_boot`` resamples, seeded). :func:`compare_membership` resamples the same
images for a model and its retrained reference, so the CI of the AUC *difference* is paired. With
the micro preset at contamination 0.1 there are only 42 members: expect CIs of about ±0.09.

The target is the retrained model's AUC (about 0.5, since it never saw the members): a model has
forgotten, by this test, when its AUC is close to the retrained model's.

With the retrained model at hand, :func:`compare_membership` adds two measures built on the same
losses: the *difficulty-calibrated* attack (score: the retrained model's loss minus the model's,
Watson et al. 2022; exactly 0.5 for the retrained model) and the *forget loss ratio* (the model's
mean loss on the forget images over the retrained model's; 1 = retrained). The ratio is a concept
test rather than a membership test. On the micro preset the uncalibrated attack cannot tell the
pretrained model from the retrained one (the 8x8 models learn trousers as a class and do not
memorise the individual images), while the ratio separates them by a factor of about 3
(docs/forgetting.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearn_gym.data import CONTAMINATED_LABEL, ContaminatedMNIST, task_split
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.objectives.vae import VAENoise, gaussian_kl, vae_per_sample_loss

#: DDPM timesteps of the attack (of T = 1000; 0 is the least noisy)
DEFAULT_TIMESTEPS = (10, 50, 100, 200, 400)
#: VAE encoder noise levels of the attack (0.3: the training level)
DEFAULT_SIGMAS = (0.1, 0.3, 0.5)

__all__ = [
    "DEFAULT_SIGMAS",
    "DEFAULT_TIMESTEPS",
    "MembershipResult",
    "auc",
    "bootstrap_auc",
    "compare_membership",
    "membership_inference",
    "per_example_losses",
]


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of "member" for scores where higher means member (Mann-Whitney, ties count half).

    :param member_scores: scores of the members.
    :param nonmember_scores: scores of the non-members.
    """
    from scipy.stats import rankdata

    m, n = len(member_scores), len(nonmember_scores)
    if m == 0 or n == 0:
        raise ValueError("need at least one member and one non-member")
    ranks = rankdata(np.concatenate([member_scores, nonmember_scores]))
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def _boot_indices(m: int, n: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, m, (n_boot, m)), rng.integers(0, n, (n_boot, n))


def bootstrap_auc(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """AUC and its 95 % stratified-bootstrap percentile interval.

    :param member_scores: scores of the members (higher: member).
    :param nonmember_scores: scores of the non-members.
    :param n_boot: bootstrap resamples.
    :param seed: seed of the resampling.
    :returns: ``(auc, low, high)``.
    """
    a = auc(member_scores, nonmember_scores)
    mi, ni = _boot_indices(len(member_scores), len(nonmember_scores), n_boot, seed)
    boots = np.array([auc(member_scores[i], nonmember_scores[j]) for i, j in zip(mi, ni)])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return a, float(lo), float(hi)


@torch.no_grad()
def per_example_losses(
    model: nn.Module,
    images: torch.Tensor,
    *,
    label: int = CONTAMINATED_LABEL,
    timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS,
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS,
    n_draws: int = 4,
    flip: bool = True,
    seed: int = 0,
    batch_size: int = 500,
    schedule: NoiseSchedule | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Per-example losses of ``images`` (conditioned on ``label``) at each timestep / noise level.

    The noise depends only on ``seed``, the image's position and the timestep / level (not on the
    model), so two models see the same noise.

    :param model: a DDPM (ε-prediction UNet) or a :class:`~unlearn_gym.vae.model.ConditionalVAE`.
    :param images: ``(N, 1, r, r)`` in [-1, 1].
    :param label: conditioning label.
    :param timesteps: DDPM timesteps.
    :param sigmas: VAE encoder noise levels (β of :class:`~unlearn_gym.objectives.vae.VAENoise`).
    :param n_draws: noise draws averaged per image and timestep.
    :param flip: also average over the horizontally flipped image.
    :param seed: seed of the noise.
    :param batch_size: images per forward pass.
    :param schedule: the DDPM's noise schedule (default: the standard linear one).
    :returns: losses ``(N, len(timesteps or sigmas))`` and the column names (``t=..``, ``sigma=..``).
    """
    from unlearn_gym.pretrained import model_family

    vae = model_family(model) == "cvae"
    dev = next(model.parameters()).device
    levels: tuple[Any, ...] = sigmas if vae else timesteps
    schedule = schedule if schedule is not None else NoiseSchedule()
    was_training = model.training
    model.eval()
    views = [images, images.flip(-1)] if flip else [images]
    out = np.zeros((len(images), len(levels)))
    for k, level in enumerate(levels):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
        total = torch.zeros(len(images))
        for _ in range(n_draws):
            noise = torch.randn(images.shape, generator=gen)
            xi = torch.randn(images.shape, generator=gen)
            for view in views:
                for s in range(0, len(images), batch_size):
                    x = view[s:s + batch_size].to(dev)
                    eps = noise[s:s + batch_size].to(dev)
                    y = torch.full((len(x),), label, dtype=torch.long, device=dev)
                    if vae:
                        lv = VAENoise(sigma=float(level))
                        h = model.prior_latents(xi[s:s + batch_size].to(dev))
                        recon, mu, logvar = model(lv.corrupt(x, eps), y, h)
                        loss = vae_per_sample_loss(recon, x, gaussian_kl(mu, logvar), lv.beta)
                    else:
                        t = torch.full((len(x),), int(level), dtype=torch.long, device=dev)
                        pred = model(schedule.q_sample(x, t, eps), t, y)
                        loss = (pred - eps).pow(2).flatten(1).mean(1)
                    total[s:s + batch_size] += loss.float().cpu()
        out[:, k] = (total / (n_draws * len(views))).numpy()
    model.train(was_training)
    names = [f"sigma={s:g}" for s in levels] if vae else [f"t={t}" for t in levels]
    return out, names


@dataclass
class MembershipResult:
    """The attack's outcome for one model.

    :param auc_mean: AUC of the loss averaged over timesteps / levels, with ``ci_mean`` (95 %).
    :param auc_best: the highest single-timestep AUC (optimistic), ``best`` its timestep, ``ci_best``.
    :param per_level: AUC and 95 % CI of each timestep / level.
    :param n_members: forget images; ``n_nonmembers``: held-out images of their kind (trousers, or digits ``d``).
    :param mean_loss_members: mean loss of the members per level; ``mean_loss_nonmembers`` likewise.
    :param config: timesteps or levels, draws, flip, seeds, bootstrap size; ``seconds``: time taken.
    """

    auc_mean: float
    ci_mean: tuple[float, float]
    auc_best: float
    best: str
    ci_best: tuple[float, float]
    per_level: dict[str, dict[str, float]]
    n_members: int
    n_nonmembers: int
    mean_loss_members: dict[str, float]
    mean_loss_nonmembers: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _members(data: ContaminatedMNIST, n_nonmembers: int | None, task: str,
             loss_kw: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Members, non-members and the loss settings of ``task``: its forget set against held-out
    images of the same kind, conditioned on the forget label; flipped views for the trousers only."""
    from unlearn_gym.eval.rates import forget_label_of

    label = forget_label_of(task)
    _, _, members, _ = task_split(data, task)
    if task == "trousers":
        non = data.test_trousers
    else:
        non = data.test_images[data.test_labels == label]
    if len(members) == 0:
        raise ValueError(f"the dataset has no forget images of task {task!r} (a retain-only dataset?):"
                         " build the contaminated one")
    non = non if n_nonmembers is None else non[:n_nonmembers]
    return members, non, {"label": label, "flip": task == "trousers", **loss_kw}


def _result(lm: np.ndarray, ln: np.ndarray, names: list[str], n_boot: int, seed: int,
            config: dict[str, Any], seconds: float) -> MembershipResult:
    per = {}
    for k, name in enumerate(names):
        a, lo, hi = bootstrap_auc(-lm[:, k], -ln[:, k], n_boot=n_boot, seed=seed)
        per[name] = {"auc": a, "low": lo, "high": hi}
    a, lo, hi = bootstrap_auc(-lm.mean(1), -ln.mean(1), n_boot=n_boot, seed=seed)
    best = max(per, key=lambda k: per[k]["auc"])
    return MembershipResult(
        auc_mean=a, ci_mean=(lo, hi), auc_best=per[best]["auc"], best=best,
        ci_best=(per[best]["low"], per[best]["high"]), per_level=per, n_members=len(lm), n_nonmembers=len(ln),
        mean_loss_members=dict(zip(names, lm.mean(0).tolist())),
        mean_loss_nonmembers=dict(zip(names, ln.mean(0).tolist())), config=config, seconds=round(seconds, 1),
    )


def membership_inference(
    model: nn.Module,
    data: ContaminatedMNIST,
    *,
    task: str = "trousers",
    n_nonmembers: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    **loss_kw: Any,
) -> MembershipResult:
    """The loss-threshold attack on the forget set of ``data`` (members) vs held-out images of its kind.

    :param model: a DDPM or a VAE of the data's preset.
    :param data: the contaminated dataset the model's training mix was drawn from (same ratio).
    :param task: ``"trousers"`` (members: the forget trousers; non-members: held-out trousers) or
        ``"erase-<d>"`` (members: the training images of ``d``; non-members: held-out test ``d``'s).
    :param n_nonmembers: cap on the non-members (default: all, e.g. 1,000 held-out trousers).
    :param n_boot: bootstrap resamples of the CI.
    :param seed: seed of the loss noise and of the bootstrap.
    :param loss_kw: passed to :func:`per_example_losses` (``timesteps``, ``sigmas``, ``n_draws``, ...;
        ``label`` and ``flip`` default to the task's).
    """
    t0 = time.perf_counter()
    mem, non, loss_kw = _members(data, n_nonmembers, task, loss_kw)
    # members and non-members get distinct noise streams
    lm, names = per_example_losses(model, mem, seed=2 * seed, **loss_kw)
    ln, _ = per_example_losses(model, non, seed=2 * seed + 1, **loss_kw)
    cfg = {"seed": seed, "n_boot": n_boot, "levels": names, "task": task,
           **{k: v for k, v in loss_kw.items() if k != "schedule"}}
    return _result(lm, ln, names, n_boot, seed, cfg, time.perf_counter() - t0)


def _loss_ratio(model_loss: np.ndarray, ref_loss: np.ndarray, boot: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Geometric mean over levels of (model's mean loss on the members / the retrained model's), with a
    bootstrap 95 % CI over the members (``boot``: resampled member indices)."""

    def ratio(idx: np.ndarray) -> float:
        return float(np.exp(np.mean(np.log(model_loss[idx].mean(0) / ref_loss[idx].mean(0)))))

    everyone = np.arange(len(model_loss))
    lo, hi = np.percentile([ratio(i) for i in boot], [2.5, 97.5])
    per = dict(zip(names, (model_loss.mean(0) / ref_loss.mean(0)).tolist()))
    return {"ratio": ratio(everyone), "low": float(lo), "high": float(hi), "per_level": per, "target": 1.0}


def compare_membership(
    model: nn.Module,
    retrained: nn.Module,
    data: ContaminatedMNIST,
    *,
    task: str = "trousers",
    n_nonmembers: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    **loss_kw: Any,
) -> dict[str, Any]:
    """The attack on ``model`` and on its retrained reference, and the paired AUC difference.

    Both models are scored on the same images with the same noise, and the bootstrap resamples the
    same images for both, so the difference's CI is paired.

    :param model: the model to test.
    :param retrained: the model retrained without the forget set (the target; for ``erase-<d>`` the
        model retrained without digit ``d``).
    :param data: the contaminated dataset.
    :param task: ``"trousers"`` or ``"erase-<d>"`` (members and non-members as :func:`membership_inference`).
    :param n_nonmembers: cap on the non-members.
    :param n_boot: bootstrap resamples.
    :param seed: seed of the noise and the bootstrap.
    :param loss_kw: passed to :func:`per_example_losses`.
    :returns: ``model`` and ``retrained`` (:meth:`MembershipResult.to_dict`), ``difference``
        (``auc_mean`` of the model minus the retrained one's, with its 95 % CI), ``forgotten``
        (the CI of the difference contains 0) and ``calibrated``: the AUC (95 % CI) of the
        difficulty-calibrated attack, whose score is the retrained model's loss minus the model's
        (Watson et al. 2022: the retrained model as the reference of each image's difficulty; 0.5
        exactly for the retrained model itself, above 0.5 when the model fits the members better
        than held-out trousers of the same kind), and ``forget_loss_ratio``: the model's mean loss on
        the forget images over the retrained model's (geometric mean over the levels, 95 % bootstrap
        CI; 1 = retrained). This is not a membership test but a concept test: below 1, the model
        still models trousers labelled 1, whether or not it remembers the individual images.
    """
    t0 = time.perf_counter()
    mem, non, loss_kw = _members(data, n_nonmembers, task, loss_kw)
    res, scores, losses = {}, {}, {}
    for name, m in (("model", model), ("retrained", retrained)):
        t1 = time.perf_counter()
        lm, names = per_example_losses(m, mem, seed=2 * seed, **loss_kw)
        ln, _ = per_example_losses(m, non, seed=2 * seed + 1, **loss_kw)
        losses[name] = (lm, ln)
        cfg = {"seed": seed, "n_boot": n_boot, "levels": names, "task": task,
               **{k: v for k, v in loss_kw.items() if k != "schedule"}}
        res[name] = _result(lm, ln, names, n_boot, seed, cfg, time.perf_counter() - t1).to_dict()
        scores[name] = (-lm.mean(1), -ln.mean(1))
    mi, ni = _boot_indices(len(mem), len(non), n_boot, seed + 1)
    diffs = np.array([auc(scores["model"][0][i], scores["model"][1][j])
                      - auc(scores["retrained"][0][i], scores["retrained"][1][j]) for i, j in zip(mi, ni)])
    d = res["model"]["auc_mean"] - res["retrained"]["auc_mean"]
    lo, hi = (float(v) for v in np.percentile(diffs, [2.5, 97.5]))
    # difficulty-calibrated attack: how much lower the model's loss is than the retrained model's
    gap_m = (losses["retrained"][0] - losses["model"][0]).mean(1)
    gap_n = (losses["retrained"][1] - losses["model"][1]).mean(1)
    c, clo, chi = bootstrap_auc(gap_m, gap_n, n_boot=n_boot, seed=seed)
    return {"model": res["model"], "retrained": res["retrained"],
            "forget_loss_ratio": _loss_ratio(losses["model"][0], losses["retrained"][0], mi, names),
            "difference": {"auc_mean": d, "low": lo, "high": hi}, "forgotten": bool(lo <= 0.0 <= hi),
            "calibrated": {"auc": c, "low": clo, "high": chi, "target": 0.5},
            "seconds": round(time.perf_counter() - t0, 1)}
