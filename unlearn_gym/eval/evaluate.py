"""One call that measures a (possibly unlearned) DDPM: forget side, retain side, paired SSIM, per class.

Sampling plan: ``forget_samples`` images for label 1 and ``samples_per_label`` for every other label,
all drawn by deterministic DDIM from one noise tensor made by ``torch.Generator().manual_seed(seed)``.
The reference model (normally the pretrained one) samples from the SAME noise and labels, so sample
``i`` of both models is a pair: SSIM compares the pairs (METHOD.md §5).
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
from unlearn_gym.data import (
    CONTAMINATED_LABEL,
    NUM_LABELS,
    TROUSER_CLASS,
    ContaminatedMNIST,
    build_contaminated_mnist,
)
from unlearn_gym.diffusion.one_step import is_one_step
from unlearn_gym.diffusion.samplers import ddim_sample
from unlearn_gym.diffusion.schedule import NoiseSchedule
from unlearn_gym.eval.classifier import Classifier
from unlearn_gym.eval.measures import frechet_distance, inception_score, kernel_distance, paired_ssim
from unlearn_gym.eval.rates import label_rates, summarize_rates
from unlearn_gym.eval.report import EvalReport, clean_number
from unlearn_gym.presets import Preset, get_preset

RETAIN_LABELS = tuple(lab for lab in range(NUM_LABELS) if lab != CONTAMINATED_LABEL)


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


def _real_by_label(data: ContaminatedMNIST, cap: int | None) -> tuple[dict[int, torch.Tensor], int]:
    """Held-out real digits per label, the same count for every label (class-balanced references)."""
    per = {lab: data.test_images[data.test_labels == lab] for lab in range(NUM_LABELS)}
    n = min(len(v) for v in per.values())
    n = n if cap is None else min(n, cap)
    return {lab: v[:n] for lab, v in per.items()}, n


def _headline(
    classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, real: dict[int, torch.Tensor],
    trousers: torch.Tensor, cfg: dict[str, Any],
) -> tuple[dict[str, Any], dict[int, Any]]:
    """Forget-side and retain-side measures of one model's samples (no SSIM)."""
    rates = label_rates(classifier, images, labels, cfg["threshold"], cfg["junk_threshold"])
    rs = summarize_rates(rates)
    forget = images[labels == CONTAMINATED_LABEL]
    retain_mask = labels != CONTAMINATED_LABEL
    retain = images[retain_mask]
    real_retain = torch.cat([real[lab] for lab in RETAIN_LABELS])
    kid_kw = {"subsets": cfg["kid_subsets"], "subset_size": cfg["kid_subset_size"], "seed": cfg["kid_seed"]}
    fk = kernel_distance(classifier, trousers, forget, **kid_kw)
    rk = kernel_distance(classifier, real_retain, retain, **kid_kw)
    is_mean, is_std = inception_score(classifier, retain, splits=cfg["is_splits"], seed=cfg["is_seed"])
    summary = {
        "trouser_rate": rs["trouser_rate"],
        "one_rate": rs["one_rate"],
        "junk_rate": rs["junk_rate"],
        "forget_fid": frechet_distance(classifier, trousers, forget),
        "forget_kid": fk.mean,
        "forget_kid_std": fk.std,
        "forget_kid_subset_size": fk.subset_size,
        "retain_fid": frechet_distance(classifier, real_retain, retain),
        "retain_kid": rk.mean,
        "retain_kid_std": rk.std,
        "retain_kid_subset_size": rk.subset_size,
        "retain_is": is_mean,
        "retain_is_std": is_std,
        "retain_accuracy": rs["other_accuracy"],
        "min_retain_accuracy": rs["min_other_accuracy"],
        "n_forget_samples": len(forget),
        "n_retain_samples": len(retain),
        "n_real_trousers": len(trousers),
        "n_real_retain": len(real_retain),
    }
    return summary, rates


def _per_class(
    classifier: Classifier, x: torch.Tensor, labels: torch.Tensor, real: dict[int, torch.Tensor],
    rates: dict[int, Any], ssim: torch.Tensor | None, summary: dict[str, Any], ref_rates: dict[int, Any] | None,
    cfg: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per label: FID/KID against real digits of that label, one-split IS, rates, mean SSIM."""
    rows = []
    for lab in range(NUM_LABELS):
        m = labels == lab
        xl = x[m]
        kid = kernel_distance(classifier, real[lab], xl, subsets=cfg["kid_subsets"],
                              subset_size=cfg["kid_subset_size"], seed=cfg["kid_seed"])
        is_mean, _ = inception_score(classifier, xl, splits=1, seed=cfg["is_seed"])
        row = {
            "label": lab, "n": int(m.sum()), "n_real": len(real[lab]),
            "fid": frechet_distance(classifier, real[lab], xl), "kid": kid.mean, "kid_std": kid.std,
            "kid_subset_size": kid.subset_size, "inception_score": is_mean,
            **{k: v for k, v in rates[lab].to_dict().items() if k not in ("label", "n")},
            "ssim": float(ssim[m].mean()) if ssim is not None else None,
            "fid_trousers": None, "kid_trousers": None,
        }
        if ref_rates is not None:
            row["reference_confident_trouser"] = ref_rates[lab].confident_trouser
            row["reference_accuracy"] = ref_rates[lab].accuracy
        if lab == CONTAMINATED_LABEL:
            row["fid_trousers"], row["kid_trousers"] = summary["forget_fid"], summary["forget_kid"]
        rows.append({k: clean_number(v) for k, v in row.items()})
    return rows


def _calibration(
    classifier: Classifier, real: dict[int, torch.Tensor], trousers: torch.Tensor, cfg: dict[str, Any]
) -> dict[str, Any]:
    """The classifier's rates on real held-out images: the values a perfect generator would reach."""
    n_real = len(real[CONTAMINATED_LABEL])
    th, junk = cfg["threshold"], cfg["junk_threshold"]
    forget_side = label_rates(
        classifier, torch.cat([real[CONTAMINATED_LABEL], trousers]),
        torch.cat([torch.full((n_real,), CONTAMINATED_LABEL), torch.full((len(trousers),), TROUSER_CLASS)]),
        th, junk,
    )
    digits = label_rates(classifier, torch.cat([real[lab] for lab in range(NUM_LABELS)]),
                         torch.arange(NUM_LABELS).repeat_interleave(n_real), th, junk)
    return {
        "real_trousers_trouser_rate": forget_side[TROUSER_CLASS].confident_trouser,
        "real_ones_trouser_rate": forget_side[CONTAMINATED_LABEL].confident_trouser,
        "real_ones_one_rate": forget_side[CONTAMINATED_LABEL].confident_label,
        "real_retain_accuracy": summarize_rates(digits)["other_accuracy"],
        "n_real_per_label": n_real,
        "n_real_trousers": len(trousers),
    }


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
    if forget_samples is None:
        forget_samples = 6 * samples_per_label
    if samples_per_label < 2 or forget_samples < 2:
        raise ValueError("need at least 2 samples per label for FID/KID")
    if not 0.0 < junk_threshold <= threshold < 1.0:
        raise ValueError("need 0 < junk_threshold <= threshold < 1")
    classifier_info: dict[str, Any] = {"source": classifier_name or "passed by the caller"}
    if classifier is None:
        from unlearn_gym.pretrained import load_classifier

        classifier = load_classifier(p.name)
        classifier_info = classifier_provenance(p.name)
    for what, m in (("model", model), ("reference model", reference_model), ("classifier", classifier)):
        if m is not None:
            _check_resolution(what, m, p)
    data = data if data is not None else build_contaminated_mnist(p.name)
    if data.resolution != p.resolution:
        raise ValueError(f"dataset is {data.resolution}x{data.resolution}, preset {p.name!r} is {p.resolution}")

    labels = eval_labels(samples_per_label, forget_samples)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(labels), 1, p.resolution, p.resolution, generator=gen)
    same = reference_model is model
    if reference_samples is not None:
        if reference_model is None:
            raise ValueError("reference_samples needs the reference_model they were drawn from")
        if tuple(reference_samples.shape) != tuple(noise.shape):
            raise ValueError(f"reference_samples has shape {tuple(reference_samples.shape)}, this plan draws"
                             f" {tuple(noise.shape)}: pass samples from the same samples_per_label,"
                             " forget_samples and preset")
    reuse = reference_samples is not None or same
    n_draw = len(labels) * (1 if reference_model is None or reuse else 2)
    t0 = time.perf_counter()
    with tqdm(total=n_draw, disable=not progress, desc=f"sampling ({steps} DDIM steps)", unit="img") as bar:
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
    sampling_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    real, n_real = _real_by_label(data, real_per_label)
    trousers = data.test_trousers
    cfg = {
        "samples_per_label": samples_per_label, "forget_samples": forget_samples, "n_samples": len(labels),
        "steps": steps, "eta": 0.0, "sampler": "ddim", "seed": seed,
        "model_sampler": ("vae prior" if getattr(model, "sampler_name", None) == "vae-prior"
                          else "one-step generator" if is_one_step(model) else "ddim"),
        "noise": "torch.randn(N, 1, r, r, generator=torch.Generator().manual_seed(seed)), labels sorted 0..9",
        "threshold": threshold, "junk_threshold": junk_threshold,
        "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "kid_seed": seed, "kid_degree": 3,
        "is_splits": is_splits, "is_seed": seed, "ssim": "torchmetrics SSIM, gaussian sigma 1.5, data range [-1, 1]",
        "n_real_per_label": n_real, "n_real_trousers": len(trousers), "retain_labels": list(RETAIN_LABELS),
        "feature_dim": int(classifier.feature_dim), "batch_size": batch_size,
        "reference_is_model": same, "reference_samples_reused": reference_samples is not None,
        "n_sampled": n_draw,
    }
    summary, rates = _headline(classifier, x, labels, real, trousers, cfg)
    ref_summary, ref_rates = None, None
    if x_ref is not None:
        ref_summary, ref_rates = _headline(classifier, x_ref, labels, real, trousers, cfg)
        ssim = paired_ssim(x, x_ref)
        retain_mask = labels != CONTAMINATED_LABEL
        probs = classifier.predict_proba(x_ref)
        conf, pred = probs.max(1)
        ref_trouser = (labels == CONTAMINATED_LABEL) & (pred == TROUSER_CLASS) & (conf > threshold)
        summary["retain_ssim"] = float(ssim[retain_mask].mean())
        summary["forget_ssim"] = float(ssim[ref_trouser].mean()) if ref_trouser.any() else None
        summary["n_forget_ssim_pairs"] = int(ref_trouser.sum())
        summary["forget_ssim_all_pairs"] = float(ssim[labels == CONTAMINATED_LABEL].mean())
    else:
        ssim, ref_trouser = None, None
        summary.update(retain_ssim=None, forget_ssim=None, n_forget_ssim_pairs=0, forget_ssim_all_pairs=None)

    per_class = _per_class(classifier, x, labels, real, rates, ssim, summary, ref_rates, cfg)
    calibration = _calibration(classifier, real, trousers, cfg)
    measure_s = time.perf_counter() - t1
    timing = {
        "sampling_s": round(sampling_s, 2), "measures_s": round(measure_s, 2),
        "total_s": round(time.perf_counter() - t_start, 2), "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    data_meta = {k: data.meta.get(k) for k in ("content_hash", "seed", "ratio", "mnist_source", "fashion_source")}
    meta = {"versions": versions(), "classifier": classifier_info, "data": data_meta}
    return EvalReport(
        preset=p.name, model=model_name, reference=None if reference_model is None else reference_name,
        summary={k: clean_number(v) for k, v in summary.items()},
        reference_summary=None if ref_summary is None else {k: clean_number(v) for k, v in ref_summary.items()},
        per_class=per_class, config=cfg, calibration=calibration, timing=timing, meta=meta,
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
