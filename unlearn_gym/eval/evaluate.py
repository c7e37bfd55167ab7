"""One call that measures a (possibly unlearned) DDPM: forget side, retain side, paired SSIM, per class.

Sampling plan: ``forget_samples`` images for label 1 and ``samples_per_label`` for every other label,
all drawn by deterministic DDIM from one noise tensor made by ``torch.Generator().manual_seed(seed)``.
The reference model (normally the pretrained one) samples from the SAME noise and labels, so sample
``i`` of both models is a pair: SSIM compares the pairs (docs/method.md §5).

This module loads, samples and assembles the report; the measures of the drawn samples (summary,
SSIM, per-class rows, calibration) are in :mod:`unlearn_gym.eval.summaries`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from unlearn_gym.checkpoints import CheckpointError, load_checkpoint, read_sidecar, versions
from unlearn_gym.classifier import Classifier
from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS, ContaminatedMNIST, build_contaminated_mnist
from unlearn_gym.diffusion.one_step import is_one_step
from unlearn_gym.diffusion.samplers import ddim_sample
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.eval.report import EvalReport, clean_number
from unlearn_gym.eval.summaries import (
    NO_SSIM,
    RETAIN_LABELS,
    calibration,
    headline,
    per_class_rows,
    real_by_label,
    ssim_summary,
)
from unlearn_gym.presets import Preset, get_preset

__all__ = [
    "RETAIN_LABELS",
    "classifier_provenance",
    "draw_samples",
    "eval_labels",
    "evaluate",
    "load_eval_model",
    "write_evaluation",
]


def load_eval_model(
    spec: str | os.PathLike, preset: str | None = None, model: str = "ddpm"
) -> tuple[nn.Module, str]:
    """Resolve a model argument of ``unlearn-gym evaluate``: ``"pretrained"`` or a checkpoint path.

    :param spec: ``"pretrained"`` (the preset's shipped EMA model) or a ``ddpm``/``cvae``/``unlearned``
        checkpoint (a path says its own model family).
    :param preset: expected preset; ``None`` takes the checkpoint's own (required for ``"pretrained"``).
    :param model: family of ``"pretrained"``: ``"ddpm"`` or ``"cvae"``.
    :returns: (model in eval mode, its preset name).
    :raises CheckpointError: missing, corrupt, foreign, wrong-kind or other-preset checkpoint.
    """
    from unlearn_gym.pretrained import MODEL_KINDS, load_model_file, load_pretrained

    if str(spec) == "pretrained":
        if preset is None:
            raise ValueError("'pretrained' needs a preset")
        return load_pretrained(preset, model=model), get_preset(preset).name
    ck_preset = load_checkpoint(spec, ("cvae", *MODEL_KINDS), preset)["preset"]
    return load_model_file(spec, ck_preset), ck_preset


def _check_resolution(what: str, module: nn.Module, preset: Preset) -> None:
    res = getattr(module, "resolution", None)
    if res is not None and int(res) != preset.resolution:
        raise CheckpointError(
            f"the {what} works at {res}x{res} but preset {preset.name!r} is {preset.resolution}x{preset.resolution};"
            " pass a model of the same preset"
        )


def eval_labels(samples_per_label: int, forget_samples: int) -> torch.Tensor:
    """The sorted label vector: ``forget_samples`` ones and ``samples_per_label`` of every other digit."""
    counts = [forget_samples if lab == CONTAMINATED_LABEL else samples_per_label for lab in range(NUM_LABELS)]
    return torch.cat([torch.full((n,), lab, dtype=torch.long) for lab, n in enumerate(counts)])


def draw_samples(
    model: nn.Module,
    labels: torch.Tensor,
    noise: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 250,
    bar: tqdm | None = None,
    schedule: NoiseSchedule | None = None,
) -> torch.Tensor:
    """DDIM samples of ``model`` from fixed ``noise``, in chunks (so a progress bar can follow).

    A one-step generator (a model with a ``generate(labels, noise)`` method, e.g.
    :class:`~unlearn_gym.diffusion.one_step.OneStepGenerator` from SFD) is sampled by that method
    from the same noise instead; ``steps`` and ``schedule`` are then unused.

    :param model: ε-prediction UNet, or a one-step generator.
    :param labels: one label per image.
    :param noise: initial noise, one image per label (identical noise makes samples comparable).
    :param steps: DDIM steps.
    :param batch_size: images per chunk.
    :param bar: optional progress bar advanced by the number of images of each chunk.
    :param schedule: noise schedule (default: the standard linear one every model here is trained with).
    """
    schedule = schedule if schedule is not None else NoiseSchedule()
    out = []
    for i in range(0, len(labels), batch_size):
        if is_one_step(model):
            out.append(model.generate(labels[i : i + batch_size], noise[i : i + batch_size]))
        else:
            out.append(ddim_sample(model, schedule, labels[i : i + batch_size], steps=steps,
                                   noise=noise[i : i + batch_size], batch_size=batch_size))
        if bar is not None:
            bar.update(len(out[-1]))
    return torch.cat(out)


def _check_plan(samples_per_label: int, forget_samples: int | None, threshold: float, junk_threshold: float) -> int:
    """Check the sampling plan and thresholds; return the label-1 sample count (default ``6 * samples_per_label``)."""
    if forget_samples is None:
        forget_samples = 6 * samples_per_label
    if samples_per_label < 2 or forget_samples < 2:
        raise ValueError("need at least 2 samples per label for FID/KID")
    if not 0.0 < junk_threshold <= threshold < 1.0:
        raise ValueError("need 0 < junk_threshold <= threshold < 1")
    return forget_samples


def _resolve_classifier(
    classifier: Classifier | None, classifier_name: str | None, preset: Preset
) -> tuple[Classifier, dict[str, Any]]:
    """The classifier to score with (default: the preset's shipped one) and its provenance for the report."""
    if classifier is not None:
        return classifier, {"source": classifier_name or "passed by the caller"}
    from unlearn_gym.pretrained import load_classifier

    return load_classifier(preset.name), classifier_provenance(preset.name)


def _resolve_data(data: ContaminatedMNIST | None, preset: Preset) -> ContaminatedMNIST:
    """The dataset of the real references (default: the preset's), checked against the preset's resolution."""
    data = data if data is not None else build_contaminated_mnist(preset.name)
    if data.resolution != preset.resolution:
        raise ValueError(
            f"dataset is {data.resolution}x{data.resolution}, preset {preset.name!r} is {preset.resolution}"
        )
    return data


def _check_reference_samples(
    reference_samples: torch.Tensor | None, reference_model: nn.Module | None, noise: torch.Tensor
) -> None:
    """Reused reference samples need their reference model and must match this plan's shape."""
    if reference_samples is None:
        return
    if reference_model is None:
        raise ValueError("reference_samples needs the reference_model they were drawn from")
    if tuple(reference_samples.shape) != tuple(noise.shape):
        raise ValueError(f"reference_samples has shape {tuple(reference_samples.shape)}, this plan draws"
                         f" {tuple(noise.shape)}: pass samples from the same samples_per_label,"
                         " forget_samples and preset")


def _sample_pair(
    model: nn.Module,
    reference_model: nn.Module | None,
    labels: torch.Tensor,
    noise: torch.Tensor,
    reference_samples: torch.Tensor | None,
    *,
    steps: int,
    batch_size: int,
    schedule: NoiseSchedule | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Samples of the model and of the reference from the same noise and labels, under one progress bar.

    The reference is not sampled when there is none, when it is the model itself (its samples are
    reused) or when ``reference_samples`` are given.

    :returns: (model samples, reference samples or ``None``, number of images drawn).
    """
    same = reference_model is model
    reuse = reference_samples is not None or same
    n_draw = len(labels) * (1 if reference_model is None or reuse else 2)
    how = "VAE prior" if _model_sampler(model) == "vae prior" else f"{steps} DDIM steps"
    with tqdm(total=n_draw, disable=not progress, desc=f"sampling ({how})", unit="img") as bar:
        kw = {"steps": steps, "batch_size": batch_size, "bar": bar, "schedule": schedule}
        x = draw_samples(model, labels, noise, **kw)
        if reference_model is None:
            x_ref = None
        elif same:
            x_ref = x
        elif reference_samples is not None:
            x_ref = reference_samples
        else:
            x_ref = draw_samples(reference_model, labels, noise, **kw)
    return x, x_ref, n_draw


def _model_sampler(model: nn.Module) -> str:
    """How the evaluated model is sampled, as recorded in the report's config."""
    if getattr(model, "sampler_name", None) == "vae-prior":
        return "vae prior"
    return "one-step generator" if is_one_step(model) else "ddim"


def _eval_config(
    model: nn.Module,
    classifier: Classifier,
    labels: torch.Tensor,
    trousers: torch.Tensor,
    n_real: int,
    *,
    samples_per_label: int,
    forget_samples: int,
    steps: int,
    seed: int,
    threshold: float,
    junk_threshold: float,
    kid_subsets: int,
    kid_subset_size: int,
    is_splits: int,
    batch_size: int,
    reference_is_model: bool,
    reference_samples_reused: bool,
    n_sampled: int,
) -> dict[str, Any]:
    """The report's ``config``: the sampling plan and every measure's settings (the measures read it too)."""
    return {
        "samples_per_label": samples_per_label, "forget_samples": forget_samples, "n_samples": len(labels),
        "steps": steps, "eta": 0.0, "sampler": "ddim", "seed": seed,
        "model_sampler": _model_sampler(model),
        "noise": "torch.randn(N, 1, r, r, generator=torch.Generator().manual_seed(seed)), labels sorted 0..9",
        "threshold": threshold, "junk_threshold": junk_threshold,
        "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "kid_seed": seed, "kid_degree": 3,
        "is_splits": is_splits, "is_seed": seed, "ssim": "torchmetrics SSIM, gaussian sigma 1.5, data range [-1, 1]",
        "n_real_per_label": n_real, "n_real_trousers": len(trousers), "retain_labels": list(RETAIN_LABELS),
        "feature_dim": int(classifier.feature_dim), "batch_size": batch_size,
        "reference_is_model": reference_is_model, "reference_samples_reused": reference_samples_reused,
        "n_sampled": n_sampled,
    }


def _timing(t_start: float, sampling_s: float, measure_s: float) -> dict[str, Any]:
    """The report's ``timing``: seconds of sampling, of the measures and in all, and the thread settings."""
    return {
        "sampling_s": round(sampling_s, 2), "measures_s": round(measure_s, 2),
        "total_s": round(time.perf_counter() - t_start, 2), "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def _clean(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """``d`` with JSON-safe numbers (:func:`clean_number`); ``None`` stays ``None``."""
    return None if d is None else {k: clean_number(v) for k, v in d.items()}


def evaluate(
    model: nn.Module,
    reference_model: nn.Module | None,
    preset: str | Preset,
    *,
    classifier: Classifier | None = None,
    data: ContaminatedMNIST | None = None,
    samples_per_label: int = 50,
    forget_samples: int | None = None,
    steps: int = 50,
    seed: int = 0,
    threshold: float = 0.9,
    junk_threshold: float = 0.5,
    kid_subsets: int = 50,
    kid_subset_size: int = 1000,
    is_splits: int = 5,
    real_per_label: int | None = None,
    batch_size: int = 250,
    schedule: NoiseSchedule | None = None,
    model_name: str = "model",
    reference_name: str = "pretrained",
    classifier_name: str | None = None,
    keep_samples: bool = True,
    progress: bool = True,
    reference_samples: torch.Tensor | None = None,
) -> EvalReport:
    """Measure a DDPM on the forget side (label 1) and the retain side, paired with a reference.

    :param model: the model to evaluate (e.g. an unlearned UNet, or a one-step generator with a
        ``generate(labels, noise)`` method, sampled from the same noise in one pass).
    :param reference_model: the model it is compared with pair-wise (normally the pretrained one);
        ``None`` skips the paired SSIM and the reference column. Passing ``model`` itself reuses its
        samples (SSIM is then 1 by construction).
    :param preset: the preset of both models, the data and the classifier.
    :param classifier: evaluator (default: the preset's shipped classifier).
    :param data: dataset (default: the preset's contaminated dataset) for the real references.
    :param samples_per_label: samples for each retain label (0, 2..9).
    :param forget_samples: samples for label 1 (default ``6 * samples_per_label``).
    :param steps: DDIM steps.
    :param seed: seed of the sampling noise; KID subsets and IS splits use it too.
    :param threshold: softmax above which a prediction is confident (trouser / one rates).
    :param junk_threshold: max softmax below which a sample is junk.
    :param kid_subsets: KID subsets.
    :param kid_subset_size: KID subset size (capped at the smaller set of each comparison).
    :param is_splits: IS splits of the pooled retain samples (per-class IS uses one split).
    :param real_per_label: cap on held-out real digits per label (default: all, balanced).
    :param batch_size: images per sampling chunk.
    :param schedule: noise schedule of both models (default: the standard linear one).
    :param model_name: description recorded in the report.
    :param reference_name: description of the reference recorded in the report.
    :param classifier_name: description of a classifier passed in (recorded in the report).
    :param keep_samples: attach the samples to the report (for grids; never serialised).
    :param progress: show a progress bar over the sampled images.
    :param reference_samples: the reference model's samples from this very plan (same
        ``samples_per_label``, ``forget_samples``, ``steps``, ``seed``), e.g. ``report.samples["reference"]``
        of an earlier call: they are used instead of sampling the reference again (a benchmark
        evaluates many models against one reference).
    """
    t_start = time.perf_counter()
    p = get_preset(preset)
    forget_samples = _check_plan(samples_per_label, forget_samples, threshold, junk_threshold)
    classifier, classifier_info = _resolve_classifier(classifier, classifier_name, p)
    for what, m in (("model", model), ("reference model", reference_model), ("classifier", classifier)):
        if m is not None:
            _check_resolution(what, m, p)
    data = _resolve_data(data, p)

    labels = eval_labels(samples_per_label, forget_samples)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(labels), 1, p.resolution, p.resolution, generator=gen)
    _check_reference_samples(reference_samples, reference_model, noise)
    t0 = time.perf_counter()
    x, x_ref, n_draw = _sample_pair(model, reference_model, labels, noise, reference_samples, steps=steps,
                                    batch_size=batch_size, schedule=schedule, progress=progress)
    sampling_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    real, n_real = real_by_label(data, real_per_label)
    trousers = data.test_trousers
    cfg = _eval_config(
        model, classifier, labels, trousers, n_real, samples_per_label=samples_per_label,
        forget_samples=forget_samples, steps=steps, seed=seed, threshold=threshold, junk_threshold=junk_threshold,
        kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, is_splits=is_splits, batch_size=batch_size,
        reference_is_model=reference_model is model, reference_samples_reused=reference_samples is not None,
        n_sampled=n_draw,
    )
    summary, rates = headline(classifier, x, labels, real, trousers, cfg)
    ref_summary, ref_rates, ssim, ref_trouser = None, None, None, None
    if x_ref is not None:
        ref_summary, ref_rates = headline(classifier, x_ref, labels, real, trousers, cfg)
        ssim_entries, ssim, ref_trouser = ssim_summary(classifier, x, x_ref, labels, threshold)
        summary.update(ssim_entries)
    else:
        summary.update(NO_SSIM)

    per_class = per_class_rows(classifier, x, labels, real, rates, ssim, summary, ref_rates, cfg)
    calib = calibration(classifier, real, trousers, cfg)
    timing = _timing(t_start, sampling_s, time.perf_counter() - t1)
    data_meta = {k: data.meta.get(k) for k in ("content_hash", "seed", "ratio", "mnist_source", "fashion_source")}
    meta = {"versions": versions(), "classifier": classifier_info, "data": data_meta}
    return EvalReport(
        preset=p.name, model=model_name, reference=None if reference_model is None else reference_name,
        summary=_clean(summary), reference_summary=_clean(ref_summary),
        per_class=per_class, config=cfg, calibration=calib, timing=timing, meta=meta,
        samples={"model": x, "reference": x_ref, "labels": labels, "reference_trouser": ref_trouser}
        if keep_samples else None,
    )


def classifier_provenance(preset: str) -> dict[str, Any]:
    """Sidecar facts of the shipped classifier of ``preset`` (accuracy, command), if shipped."""
    from unlearn_gym.pretrained import ASSET_DIR, asset_path

    path = asset_path("classifier", preset)
    side = read_sidecar(path) if path.is_file() else {}
    where = f"unlearn_gym/assets/{path.name}" if path.parent == ASSET_DIR else str(path)
    return {"asset": where, "metrics": side.get("metrics"), "command": side.get("command")}


def write_evaluation(
    report: EvalReport, out_dir: str | os.PathLike, *, per_row: int = 8, scale: int = 2
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` and (when the report has samples) ``samples.png``.

    Every file is written atomically.

    :param report: the evaluation.
    :param out_dir: destination directory (created).
    :param per_row: samples per label and model in the grid.
    :param scale: integer upscaling of the grid.
    :returns: the paths written, by name.
    """
    from unlearn_gym.eval.plots import save_sample_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": report.save_json(out / "metrics.json"), "markdown": report.save_markdown(out / "metrics.md")}
    if report.samples is not None:
        paths["grid"] = save_sample_grid(report, out / "samples.png", per_row=per_row, scale=scale)
    return paths
