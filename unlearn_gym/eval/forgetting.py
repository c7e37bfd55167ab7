"""The three forget tests against the retrained reference, run together (``unlearn-gym evaluate --forget-tests``).

* membership inference on the forget set (:mod:`unlearn_gym.eval.membership`),
* relearning speed (:mod:`unlearn_gym.eval.relearning`),
* distance to the retrained model (:mod:`unlearn_gym.eval.distance`).

The reference is the shipped retrained model of the same preset, family and task
(``load_pretrained(preset, variant="retrained", model=family, task=task, ratio=ratio)``: same recipe
and seed as the pretrained model, trained on the task's retain set only). ``F0`` of the relearning
summary is the pretrained model's forget rate at the same contamination ratio, measured with the
relearning test's sampler.

Tasks: ``trousers`` (forget the trousers labelled 1; the rate is the confident-trouser rate of label-1
samples) and ``erase-<d>`` (forget every real training image of digit ``d``; the rate is the share
of label-``d`` samples the classifier calls ``d``, the benchmark's forget score of erase tasks). A
task without a shipped retrained reference raises the :class:`~unlearn_gym.checkpoints.CheckpointError`
of :func:`~unlearn_gym.pretrained.load_pretrained`, which names the ``unlearn-gym pretrain
--retain-only --task ...`` command that trains one. docs/forgetting.md says what each number means,
its noise and its cost.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from torch import nn

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import ContaminatedMNIST, build_contaminated_mnist
from unlearn_gym.data.contaminated import check_task
from unlearn_gym.eval.distance import distance_to_retrained
from unlearn_gym.eval.membership import compare_membership
from unlearn_gym.eval.rates import forget_label_of
from unlearn_gym.eval.relearning import DEFAULT_CHECKPOINTS, DEFAULT_LR, forget_rate, relearning_curve

#: settings of the membership test (:func:`~unlearn_gym.eval.membership.compare_membership`) unless overridden
MEMBERSHIP_DEFAULTS: dict[str, Any] = {"n_nonmembers": None, "n_draws": 4, "n_boot": 1000}
#: settings of the relearning test (:func:`~unlearn_gym.eval.relearning.relearning_curve`) unless overridden
RELEARN_DEFAULTS: dict[str, Any] = {"checkpoints": DEFAULT_CHECKPOINTS, "n_samples": 200, "ddim_steps": 20}
#: the relearning learning rate per preset where the default (5e-4) does not separate pretrained from
#: retrained: on tiny the retrained DDPM relearns at 5e-4 as fast as the pretrained one; at 1e-4 it is
#: at 0.00-0.03 after 2 steps against 0.25-0.36 (docs/forgetting.md, docs/forgetting/relearn-lr-tiny.json)
RELEARN_LR: dict[str, float] = {"tiny": 1e-4}

__all__ = ["MEMBERSHIP_DEFAULTS", "RELEARN_DEFAULTS", "RELEARN_LR", "checkpoint_task_ratio", "forget_rate_name",
           "forget_tests", "forget_tests_markdown", "write_forget_tests"]


def checkpoint_task_ratio(spec: str | os.PathLike, default_ratio: float = 0.1) -> tuple[str, float]:
    """The task a checkpoint's model unlearned (or was retrained for) and the contamination ratio its
    data had, from its sidecar.

    The task: an unlearned run records ``task`` (or ``params.task``), a pretraining run ``data.task``
    (``pretrain --retain-only --task erase-<d>``); none of them means ``"trousers"``. The ratio: a
    pretraining run records ``data.ratio``, an unlearned run ``params.data_ratio``. ``"pretrained"``
    or a checkpoint without a sidecar gives ``("trousers", default_ratio)``.

    :param spec: ``"pretrained"`` or a checkpoint path.
    :param default_ratio: the ratio when the sidecar records none.
    :raises ValueError: the sidecar names an unknown task.
    """
    from unlearn_gym.checkpoints import read_sidecar

    if str(spec) == "pretrained":
        return "trousers", default_ratio
    try:
        meta = read_sidecar(spec)
    except Exception:  # no sidecar: the defaults
        return "trousers", default_ratio
    params, data = meta.get("params") or {}, meta.get("data") or {}
    task = check_task(meta.get("task") or params.get("task") or data.get("task") or "trousers")
    for r in (data.get("ratio"), params.get("data_ratio"), meta.get("data_ratio")):
        if r is not None:
            return task, float(r)
    return task, default_ratio


def forget_rate_name(task: str) -> str:
    """What the forget rate of ``task`` is called in reports: ``"trouser rate"``, ``"digit-7 rate"``.

    :param task: ``"trousers"`` or ``"erase-<d>"``.
    """
    return "trouser rate" if check_task(task) == "trousers" else f"digit-{forget_label_of(task)} rate"


def forget_tests(
    model: nn.Module,
    preset: str,
    *,
    task: str = "trousers",
    ratio: float = 0.1,
    classifier: Classifier | None = None,
    retrained: nn.Module | None = None,
    pretrained: nn.Module | None = None,
    data: ContaminatedMNIST | None = None,
    seed: int = 0,
    membership_kw: dict[str, Any] | None = None,
    relearn_kw: dict[str, Any] | None = None,
    distance_kw: dict[str, Any] | None = None,
    reference_curve: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Membership, relearning and distance of ``model`` against the retrained reference.

    :param model: a DDPM or VAE of ``preset`` (the family is read from the model).
    :param preset: its preset.
    :param task: ``"trousers"`` or ``"erase-<d>"``: whose forget set the tests use, and whose retrained
        reference (for ``erase-<d>``: the model retrained without digit ``d``; members are the training
        ``d``'s, non-members the held-out ``d``'s, the rate is the share of label-``d`` samples called ``d``).
    :param ratio: contamination ratio of the data the model was pretrained on (selects the forget set,
        ``F0`` and, for erase tasks, the reference).
    :param classifier: evaluator (default: the shipped one).
    :param retrained: the reference (default: the shipped retrained model of the family and task;
        :class:`~unlearn_gym.checkpoints.CheckpointError` naming the ``pretrain --retain-only`` command
        when none is shipped).
    :param pretrained: the model ``F0`` is measured on (default: the shipped pretrained model).
    :param data: the contaminated dataset (default: the preset's at ``ratio``).
    :param seed: seed of the loss noise, bootstrap, fine-tuning and sampling.
    :param membership_kw: passed to :func:`~unlearn_gym.eval.membership.compare_membership`.
    :param relearn_kw: passed to :func:`~unlearn_gym.eval.relearning.relearning_curve`.
    :param distance_kw: passed to :func:`~unlearn_gym.eval.distance.distance_to_retrained`.
    :param reference_curve: the retrained model's relearning curve from an earlier call (same
        settings), reused instead of fine-tuning the reference again.
    :returns: ``membership``, ``relearning`` (``model``, ``retrained``, ``f0``), ``distance``,
        ``verdict`` (one line per test), ``config``, ``seconds``.
    """
    from unlearn_gym.pretrained import load_classifier, load_pretrained, model_family

    t0 = time.perf_counter()
    task = check_task(task)
    family = model_family(model)
    dev = next(model.parameters()).device
    retrained = (retrained if retrained is not None  # first: a missing reference fails before any work
                 else load_pretrained(preset, ratio=ratio, model=family, variant="retrained", task=task, device=dev))
    classifier = classifier if classifier is not None else load_classifier(preset)
    pretrained = pretrained if pretrained is not None else load_pretrained(preset, ratio=ratio, model=family,
                                                                           device=dev)
    data = data if data is not None else build_contaminated_mnist(preset, ratio=ratio)
    mem = compare_membership(model, retrained, data, task=task, seed=seed,
                             **{**MEMBERSHIP_DEFAULTS, **(membership_kw or {})})
    rkw = {"lr": RELEARN_LR.get(preset, DEFAULT_LR), **RELEARN_DEFAULTS, "seeds": (seed,), "sample_seed": seed,
           **(relearn_kw or {})}
    rate_kw = {k: rkw[k] for k in ("n_samples", "ddim_steps", "threshold") if k in rkw}
    f0 = forget_rate(pretrained, classifier, task=task, seed=rkw["sample_seed"], **rate_kw)
    curve = relearning_curve(model, data, classifier, task=task, f0=f0, **rkw)
    ref_curve = reference_curve or relearning_curve(retrained, data, classifier, task=task, f0=f0, **rkw)
    dist = distance_to_retrained(model, retrained, preset, task=task, classifier=classifier, data=data, seed=seed,
                                 **(distance_kw or {}))
    verdict = _verdict(mem, curve, ref_curve, dist, task)
    return {
        "membership": mem,
        "relearning": {"model": curve, "retrained": ref_curve, "f0": f0},
        "distance": dist,
        "verdict": verdict,
        "config": {"preset": preset, "task": task, "ratio": ratio, "family": family, "seed": seed,
                   "relearn_lr": rkw["lr"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _verdict(mem: dict[str, Any], curve: dict[str, Any], ref: dict[str, Any], dist: dict[str, Any],
             task: str = "trousers") -> dict[str, str]:
    """One plain line per test: is the model within noise of the retrained model?"""
    rate = forget_rate_name(task)
    d = mem["difference"]
    cal = mem["calibrated"]
    lr = mem["forget_loss_ratio"]
    out = {
        "membership": ("like retrained" if d["low"] <= 0.0 <= d["high"] else "unlike retrained")
        + f" (AUC difference {d['auc_mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}];"
        f" calibrated AUC {cal['auc']:.3f} [{cal['low']:.3f}, {cal['high']:.3f}], 0.5 = retrained)",
        "forget loss": ("like retrained" if lr["low"] <= 1.0 <= lr["high"]
                        else "lower than retrained: still models the forget set" if lr["high"] < 1.0
                        else "higher than retrained: pushed past the retrained model")
        + f" (loss ratio to retrained {lr['ratio']:.3f} [{lr['low']:.3f}, {lr['high']:.3f}])",
    }
    sm, sr = curve["steps_to_half_f0"], ref["steps_to_half_f0"]
    last = curve["steps"][-1]

    def fmt(s: float | None) -> str:
        return f">{last}" if s is None else f"{s:.1f}"

    # the first checkpoint after 0 steps: where pretrained and retrained differ most (docs/forgetting.md)
    k = next((i for i, st in enumerate(curve["steps"]) if st > 0), 0)
    early = curve["rates_ci"][k][0] > ref["rates_ci"][k][1]
    faster = early or (sm is not None and (sr is None or sm < 0.5 * sr))
    out["relearning"] = (("relearns faster than retrained" if faster else "relearns like retrained (or slower)")
                         + f" ({rate} after {curve['steps'][k]} steps {curve['rates'][k]:.3f} vs"
                         f" {ref['rates'][k]:.3f}; steps to half F0: {fmt(sm)} vs {fmt(sr)}, F0 {curve['f0']:.3f};"
                         f" mean rate over 0-{last} steps {curve['mean_rate']:.3f} vs {ref['mean_rate']:.3f})")
    dd = dist["difference"]
    t = dd.get("forget_rate", dd["trouser_rate"])
    out["distance"] = f"{rate} {t['value']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}],"
    if task == "trousers":
        out["distance"] += (f" retain FID {dd['retain_fid']:+.2f},"
                            f" max per-label accuracy difference {dd['max_label_accuracy']:.3f}")
    else:  # the retain FID pools the erased digit's samples: the kept digits' accuracy is the retain measure
        out["distance"] += (f" accuracy of the other digits {dd['kept_accuracy']:+.3f} (largest per-label"
                            f" difference {dd['max_kept_label_accuracy']:.3f}); retain FID {dd['retain_fid']:+.2f}"
                            " includes the erased digit's samples")
    return out


def forget_tests_markdown(result: dict[str, Any], name: str = "model") -> str:
    """A short markdown report of :func:`forget_tests`'s result."""
    c, mem, rel, dist = result["config"], result["membership"], result["relearning"], result["distance"]
    task = c.get("task", "trousers")
    rate = forget_rate_name(task)
    lines = [f"# Forget tests: {name}", "",
             f"Preset {c['preset']}, task {task}, ratio {c['ratio']:g}, family {c['family']}, seed {c['seed']};"
             f" reference: the retrained model (docs/forgetting.md). {result['seconds']} s.", "",
             "## Verdict", ""]
    lines += [f"- **{k}**: {v}" for k, v in result["verdict"].items()]
    lines += ["", "## Membership inference (loss threshold; AUC, 95 % bootstrap CI)", "",
              "| model | AUC (mean over levels) | best level | AUC (best) |", "|---|---|---|---|"]
    for k in ("model", "retrained"):
        r = mem[k]
        lines.append(f"| {k} | {r['auc_mean']:.3f} [{r['ci_mean'][0]:.3f}, {r['ci_mean'][1]:.3f}] | {r['best']} |"
                     f" {r['auc_best']:.3f} [{r['ci_best'][0]:.3f}, {r['ci_best'][1]:.3f}] |")
    lines += ["", f"## Relearning ({rate} after k fine-tuning steps on the forget set)", "",
              "| k | " + " | ".join(str(s) for s in rel["model"]["steps"]) + " |",
              "|---|" + "---|" * len(rel["model"]["steps"])]
    for k in ("model", "retrained"):
        lines.append(f"| {k} | " + " | ".join(f"{v:.3f}" for v in rel[k]["rates"]) + " |")
    lines += ["", f"F0 (pretrained) {rel['f0']:.3f}; steps to half F0: model {rel['model']['steps_to_half_f0']},"
              f" retrained {rel['retrained']['steps_to_half_f0']}.", "",
              "## Distance to the retrained model (paired samples)", "",
              f"| | {rate} | retain FID | retain accuracy |", "|---|---|---|---|"]
    for k in ("model", "retrained"):
        r = dist[k]
        lines.append(f"| {k} | {r.get('forget_rate', r['trouser_rate']):.3f} | {r['retain_fid']:.2f} |"
                     f" {r['retain_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def write_forget_tests(result: dict[str, Any], out_dir: str | os.PathLike, name: str = "model") -> dict[str, Path]:
    """Write ``forget_tests.json`` and ``forget_tests.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "forget_tests.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out / "forget_tests.md").write_text(forget_tests_markdown(result, name))
    return {"json": out / "forget_tests.json", "markdown": out / "forget_tests.md"}
