"""Does the outcome score see retain damage on the VAE track? (issue 20, "The outcome score's retain side")

Builds a population of final VAE models on the ``vae`` set's instances (train and test splits): a
λ × ρ grid of constants (λ-action -1/0/+1, ρ-action -1/-0.5/0/+0.5/+1, i.e. λ 0.05/0.5/0.95 and
ρ 0.05/0.16/0.5/1.58/5), the schedules of ``unlearn_gym.policies.baselines("vae")`` and uniform
random actions, each on env seeds ``0 .. --seeds-1`` (never the evaluation seeds 100+). For every
final model it records

* the env's outcome (the score version the env runs) and its parts (forget, retain_mean,
  retain_worst, one_rate, retain_drop);
* the evaluation suite's retain FID, retain KID, retain accuracy and min per-digit accuracy
  (``unlearn_gym.eval.summaries.headline``, the function ``unlearn-gym evaluate`` runs): prior
  samples from noise seed 0, ``--per-label`` per retain digit and 6x that for label 1, against the
  held-out real digits of the preset;
* cheap candidate retain-quality terms computed from the outcome score's own samples (its fixed
  noise, 16 per retain digit) against θ_0's samples on the same noise: classifier-feature Fréchet
  distance, paired feature distance, paired pixel MSE, mean softmax of the label.

The pretrained VAE (and, for the record, the pretrained DDPM) are measured with the same plan.
``--damage σ ...`` measures instead a damage ladder: θ_0 and the default constant's final model
(first train instance, env seed 0) with noised weights (:func:`noised`), ``--seeds`` draws per σ.

    OMP_NUM_THREADS=1 python benchmarks/vae_outcome_validity.py --seeds 3 --json docs/vae/outcome-validity-v2.json
    OMP_NUM_THREADS=1 python benchmarks/vae_outcome_validity.py --damage 0 0.02 0.05 0.1 0.2 0.3 0.5 1.0 --seeds 3 \
        --json docs/vae/outcome-damage-v2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import unlearn_gym  # noqa: F401
from unlearn_gym.data import build_contaminated_mnist
from unlearn_gym.diffusion.one_step import sample_images
from unlearn_gym.envs.instances import INSTANCE_SETS
from unlearn_gym.eval.evaluate import draw_samples, eval_labels
from unlearn_gym.eval.summaries import headline, real_by_label
from unlearn_gym.policies import ConstantPolicy, Policy, RandomPolicy, baselines, rollout
from unlearn_gym.pretrained import load_pretrained

LAM_ACTIONS = (-1.0, 0.0, 1.0)
RHO_ACTIONS = (-1.0, -0.5, 0.0, 0.5, 1.0)
SUITE_KEYS = ("retain_fid", "retain_kid", "retain_accuracy", "min_retain_accuracy", "trouser_rate", "one_rate",
              "junk_rate", "forget_fid")


def policies() -> dict[str, Policy]:
    """The policy grid: λ × ρ constants, the ``vae`` set's schedules, uniform random actions."""
    pols: dict[str, Policy] = {f"const λ {a0:+.1f}, ρ {a1:+.1f}": ConstantPolicy([a0, a1], dim=2)
                               for a0 in LAM_ACTIONS for a1 in RHO_ACTIONS}
    pols.update({k: v for k, v in baselines("vae").items() if not k.startswith("const")})
    pols["random"] = RandomPolicy(dim=2)
    return pols


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets (rows are samples)."""
    from scipy.linalg import sqrtm

    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = sqrtm(ca @ cb)
    s = s.real if np.iscomplexobj(s) else s
    return float(mu @ mu + np.trace(ca + cb - 2.0 * s))


class SuitePlan:
    """The evaluation suite's sampling plan and real references, measured per model.

    :param classifier: the preset's evaluator classifier.
    :param per_label: prior samples per retain digit (6x for label 1).
    :param kid_subsets: KID subsets.
    """

    def __init__(self, classifier: Any, per_label: int, kid_subsets: int):
        self.classifier = classifier
        self.labels = eval_labels(per_label, 6 * per_label)
        gen = torch.Generator().manual_seed(0)
        self.noise = torch.randn(len(self.labels), 1, classifier.resolution, classifier.resolution, generator=gen)
        data = build_contaminated_mnist("micro")
        self.real, _n_real = real_by_label(data, None)
        self.trousers = data.test_trousers
        self.cfg = {"threshold": 0.9, "junk_threshold": 0.5, "kid_subsets": kid_subsets, "kid_subset_size": 1000,
                    "kid_seed": 0, "is_splits": 5, "is_seed": 0}

    def measure(self, model: torch.nn.Module, steps: int = 50) -> dict[str, float]:
        """The suite's retain/forget summary of ``model`` (prior samples; DDIM ``steps`` for a DDPM)."""
        with torch.no_grad():
            x = draw_samples(model, self.labels, self.noise, steps=steps)
        s, _ = headline(self.classifier, x, self.labels, self.real, self.trousers, self.cfg)
        return {k: s[k] for k in SUITE_KEYS}


class Candidates:
    """Candidate retain-quality terms on the outcome score's own samples, against θ_0's on the same noise.

    :param scorer: the env's :class:`~unlearn_gym.envs.outcome.OutcomeScorer`.
    :param theta0: the starting model.
    """

    def __init__(self, scorer: Any, theta0: torch.nn.Module):
        self.scorer = scorer
        self.mask = scorer.labels != scorer.forget_label
        self.ref = self._samples(theta0)
        with torch.no_grad():
            self.ref_feat = scorer.classifier.features(self.ref).numpy().astype(np.float64)
        self.ref_spread = float(((self.ref_feat - self.ref_feat.mean(0)) ** 2).sum(1).mean())
        self.ref_values = self.measure(theta0)

    def _samples(self, model: torch.nn.Module) -> torch.Tensor:
        s = self.scorer
        with torch.no_grad():
            x = sample_images(model, s.schedule, s.labels, s.noise, steps=s.config.steps)
        return x[self.mask]

    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        """Feature Fréchet distance, paired feature distance (relative to θ_0's feature spread), paired
        pixel MSE and mean softmax of the label, over the retain samples."""
        x = self._samples(model)
        y = self.scorer.labels[self.mask]
        with torch.no_grad():
            f = self.scorer.classifier.features(x).numpy().astype(np.float64)
            p = self.scorer.classifier.predict_proba(x)
        return {"cand_feat_fd": frechet(f, self.ref_feat),
                "cand_feat_paired": float(((f - self.ref_feat) ** 2).sum(1).mean()) / self.ref_spread,
                "cand_pixel_mse": float(((x - self.ref) ** 2).mean()),
                "cand_soft_acc": float(p[torch.arange(len(y)), y].mean())}


def noised(model: torch.nn.Module, sigma: float, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every weight tensor ``w`` replaced by ``w + sigma * std(w) * N(0, 1)``."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.numel() > 1:
                p.add_(sigma * p.std() * torch.randn(p.shape, generator=gen))
    return out


def damage_ladder(instance: str, plan: SuitePlan, sigmas: list[float], seeds: int) -> list[dict[str, Any]]:
    """Outcome and suite retain measures of damaged models: θ_0 and the default constant's final model
    (env seed 0) with noised weights (:func:`noised`), ``seeds`` noise draws per ``sigma``."""
    env = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance=instance).unwrapped
    theta0 = copy.deepcopy(env.model)
    rollout(env, baselines("vae")["const scale +0.0"], seed=0)
    bases = {"θ_0": theta0, "default constant, seed 0": copy.deepcopy(env.model)}
    cand = Candidates(env.scorer, theta0)
    rows = []
    for base, m0 in bases.items():
        for sigma in sigmas:
            for k in range(seeds if sigma > 0 else 1):
                m = noised(m0, sigma, 1000 + k) if sigma > 0 else m0
                out = env.scorer.score(m)
                row = {"instance": instance, "base": base, "sigma": sigma, "noise_seed": 1000 + k,
                       **{f: out[f] for f in ("outcome", "forget", "retain_mean", "retain_worst", "one_rate",
                                              "retain_drop", "version")},
                       **{f: out[f] for f in out if f.startswith("quality")}, **cand.measure(m), **plan.measure(m)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="vae")
    ap.add_argument("--seeds", type=int, default=3, help="env seeds 0 .. N-1")
    ap.add_argument("--per-label", type=int, default=200, help="suite samples per retain digit (6x for label 1)")
    ap.add_argument("--kid-subsets", type=int, default=20)
    ap.add_argument("--json", required=True)
    ap.add_argument("--limit", type=int, default=0, help="policies per instance (0: all; a smoke test)")
    ap.add_argument("--damage", type=float, nargs="*", default=None,
                    help="only the damage ladder: these weight-noise levels σ (0 = no noise) on the first instance")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.damage is not None:
        inst = INSTANCE_SETS[a.set].split("train")[0].name
        env = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance=inst).unwrapped
        plan = SuitePlan(env.scorer.classifier, a.per_label, a.kid_subsets)
        t0 = time.perf_counter()
        ref = plan.measure(env.model)  # θ_0: the env has not stepped
        rows = damage_ladder(inst, plan, a.damage, a.seeds)
        out = {"command": f"benchmarks/vae_outcome_validity.py --damage {' '.join(map(str, a.damage))} --seeds"
                          f" {a.seeds} --per-label {a.per_label} --kid-subsets {a.kid_subsets}",
               "references": {"pretrained_cvae": ref}, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {a.json}: {len(rows)} models in {out['seconds']} s")
        return
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    refs: dict[str, Any] = {}
    plan = None
    for split in ("train", "test"):
        for inst in INSTANCE_SETS[a.set].split(split):
            env = gym.make("unlearn_gym:SISSUnlearnVAE-v0", instance=inst.name).unwrapped
            theta0 = copy.deepcopy(env.model).eval()
            if plan is None:
                plan = SuitePlan(env.scorer.classifier, a.per_label, a.kid_subsets)
                refs["pretrained_cvae"] = plan.measure(theta0)
                refs["pretrained_ddpm_ddim50"] = plan.measure(load_pretrained("micro", model="ddpm"), steps=50)
                print("references", json.dumps(refs), flush=True)
            cand = Candidates(env.scorer, theta0)
            refs[f"candidates_theta0_{inst.name}"] = cand.ref_values
            for name, pol in list(policies().items())[: a.limit or None]:
                for seed in range(a.seeds):
                    t0 = time.perf_counter()
                    r = rollout(env, pol, seed=seed)
                    t_ep = time.perf_counter() - t0
                    out = r["info"]["outcome"]
                    model = env.model  # no dropout or batch norm in the VAE: train/eval mode is moot
                    t1 = time.perf_counter()
                    c = cand.measure(model)
                    t_cand = time.perf_counter() - t1
                    suite = plan.measure(model)
                    row = {"instance": inst.name, "split": split, "policy": name, "seed": seed,
                           "steps": r["steps"], "terminated": r["terminated"], "version": out["version"],
                           **{k: out[k] for k in ("outcome", "forget", "forget_removed", "retain_mean",
                                                  "retain_worst", "one_rate", "retain_drop")},
                           **{k: out[k] for k in out if k.startswith("quality")},
                           **c, **suite, "episode_s": round(t_ep, 4), "candidates_s": round(t_cand, 4)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    out = {"command": f"benchmarks/vae_outcome_validity.py --set {a.set} --seeds {a.seeds} --per-label"
                      f" {a.per_label} --kid-subsets {a.kid_subsets}",
           "suite_plan": {"per_label": a.per_label, "forget_samples": 6 * a.per_label, "noise_seed": 0,
                          "kid_subsets": a.kid_subsets, "kid_subset_size": 1000},
           "references": refs, "rows": rows, "seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.json}: {len(rows)} models in {out['seconds']} s")


if __name__ == "__main__":
    main()
