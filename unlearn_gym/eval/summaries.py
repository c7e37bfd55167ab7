"""What :func:`~unlearn_gym.eval.evaluate.evaluate` computes from drawn samples: the tables of a report.

Headline summary (forget side, retain side), paired SSIM against the reference, one row per label,
and the classifier's calibration on real held-out images. Sampling and the report itself live in
:mod:`unlearn_gym.eval.evaluate`.
"""

from __future__ import annotations

from typing import Any

import torch

from unlearn_gym.classifier import Classifier
from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS, TROUSER_CLASS, ContaminatedMNIST
from unlearn_gym.eval.measures import frechet_distance, inception_score, kernel_distance, paired_ssim
from unlearn_gym.eval.rates import LabelRates, label_rates, summarize_rates
from unlearn_gym.eval.report import clean_number

RETAIN_LABELS = tuple(lab for lab in range(NUM_LABELS) if lab != CONTAMINATED_LABEL)


def real_by_label(data: ContaminatedMNIST, cap: int | None) -> tuple[dict[int, torch.Tensor], int]:
    """Held-out real digits per label, the same count for every label (class-balanced references)."""
    per = {lab: data.test_images[data.test_labels == lab] for lab in range(NUM_LABELS)}
    n = min(len(v) for v in per.values())
    n = n if cap is None else min(n, cap)
    return {lab: v[:n] for lab, v in per.items()}, n


def headline(
    classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, real: dict[int, torch.Tensor],
    trousers: torch.Tensor, cfg: dict[str, Any],
) -> tuple[dict[str, Any], dict[int, LabelRates]]:
    """Forget-side and retain-side measures of one model's samples (no SSIM), and its per-label rates."""
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


def ssim_summary(
    classifier: Classifier, x: torch.Tensor, x_ref: torch.Tensor, labels: torch.Tensor, threshold: float
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Paired SSIM of the model's samples against the reference's from the same noise.

    The forget-side SSIM averages only the label-1 pairs where the reference drew a confident trouser.

    :returns: (the summary's SSIM entries, SSIM per pair, mask of the reference-trouser pairs).
    """
    ssim = paired_ssim(x, x_ref)
    retain_mask = labels != CONTAMINATED_LABEL
    probs = classifier.predict_proba(x_ref)
    conf, pred = probs.max(1)
    ref_trouser = (labels == CONTAMINATED_LABEL) & (pred == TROUSER_CLASS) & (conf > threshold)
    entries = {
        "retain_ssim": float(ssim[retain_mask].mean()),
        "forget_ssim": float(ssim[ref_trouser].mean()) if ref_trouser.any() else None,
        "n_forget_ssim_pairs": int(ref_trouser.sum()),
        "forget_ssim_all_pairs": float(ssim[labels == CONTAMINATED_LABEL].mean()),
    }
    return entries, ssim, ref_trouser


#: The SSIM entries of a summary when there is no reference to pair with.
NO_SSIM: dict[str, Any] = {"retain_ssim": None, "forget_ssim": None, "n_forget_ssim_pairs": 0,
                           "forget_ssim_all_pairs": None}


def per_class_rows(
    classifier: Classifier, x: torch.Tensor, labels: torch.Tensor, real: dict[int, torch.Tensor],
    rates: dict[int, LabelRates], ssim: torch.Tensor | None, summary: dict[str, Any],
    ref_rates: dict[int, LabelRates] | None, cfg: dict[str, Any],
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


def calibration(
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
