"""The result of one evaluation: a dataclass that round-trips through JSON and renders markdown."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from unlearn_gym.checkpoints import atomic_write_bytes, write_json

#: Headline measures: (key, description, which direction is better), forget side then retain side.
FORGET_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("trouser_rate", "trouser rate: label-1 samples called trouser, softmax > threshold", "lower"),
    ("one_rate", "one rate: label-1 samples called one, softmax > threshold", "higher"),
    ("junk_rate", "junk rate: label-1 samples with max softmax < junk threshold", "lower"),
    ("forget_fid", "FID, label-1 samples vs held-out real trousers", "higher"),
    ("forget_kid", "KID, label-1 samples vs held-out real trousers", "higher"),
    ("forget_ssim", "SSIM to the reference on label-1 pairs where the reference drew a trouser", "lower"),
    ("n_forget_ssim_pairs", "number of those pairs", ""),
)
RETAIN_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("retain_fid", "FID, retain-label samples vs held-out real digits", "lower"),
    ("retain_kid", "KID, retain-label samples vs held-out real digits", "lower"),
    ("retain_is", "IS over retain-label samples", "higher"),
    ("retain_accuracy", "digit accuracy over retain labels", "higher"),
    ("min_retain_accuracy", "lowest per-label digit accuracy over retain labels", "higher"),
    ("retain_ssim", "SSIM to the reference over retain-label pairs", "higher"),
)


def sampler_text(config: dict[str, Any]) -> str:
    """How an evaluation's samples were drawn, for reports: ``"DDIM 50 steps (eta 0)"`` for a DDPM;
    a VAE is sampled from its prior (its decoder on latents from the fixed noise), not by DDIM.

    :param config: an :class:`EvalReport`'s ``config`` (``model_sampler``, ``steps``).
    """
    how = config.get("model_sampler", "ddim")
    if how == "vae prior":
        return "VAE prior samples (the decoder on latents from the fixed noise; no DDIM)"
    if how == "one-step generator":
        return f"the model's one-step generator (the reference: DDIM {config.get('steps')} steps, eta 0)"
    return f"DDIM {config.get('steps')} steps (eta 0)"


#: Per-class columns: (key, header).
CLASS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "label"),
    ("n", "n"),
    ("n_real", "n real"),
    ("fid", "FID"),
    ("kid", "KID"),
    ("inception_score", "IS"),
    ("accuracy", "acc"),
    ("confident_label", "conf. label"),
    ("confident_trouser", "trouser"),
    ("junk", "junk"),
    ("ssim", "SSIM"),
    ("fid_trousers", "FID vs trousers"),
    ("kid_trousers", "KID vs trousers"),
)


def clean_number(x: Any) -> Any:
    """Python float/int for tensors and numbers; ``None`` for NaN or infinity."""
    if isinstance(x, torch.Tensor):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) >= 1e3 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"
    return str(x)


@dataclass
class EvalReport:
    """Everything one evaluation measured, and how.

    :param preset: preset of the model, the data and the classifier.
    :param model: description of the evaluated model (checkpoint path or name).
    :param reference: description of the reference model (``None``: no paired measures).
    :param summary: headline measures of the model (see :data:`FORGET_MEASURES`, :data:`RETAIN_MEASURES`)
        plus sample counts and KID/IS standard deviations.
    :param reference_summary: the same measures for the reference model's samples (no SSIM).
    :param per_class: one row per label 0..9 (see :data:`CLASS_COLUMNS`).
    :param config: sample counts, DDIM steps, seeds, thresholds, KID/IS settings, real reference counts.
    :param calibration: the classifier's rates on real held-out images (what "perfect" looks like).
    :param timing: seconds spent sampling, measuring, in total, and the thread count.
    :param meta: versions, dataset hash, classifier provenance.
    :param samples: the generated images (``model``, ``reference``, ``labels``) and ``reference_trouser``
        (label-1 pairs whose reference sample is a confident trouser); not serialised.
    """

    preset: str
    model: str
    reference: str | None
    summary: dict[str, Any]
    reference_summary: dict[str, Any] | None
    per_class: list[dict[str, Any]]
    config: dict[str, Any]
    calibration: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the samples)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        """Inverse of :meth:`to_dict`.

        :param d: a dictionary made by :meth:`to_dict` (or read from ``metrics.json``).
        :raises ValueError: when required keys are missing.
        """
        names = {f.name for f in fields(cls)} - {"samples"}
        missing = {"preset", "model", "reference", "summary", "reference_summary", "per_class", "config"} - set(d)
        if missing:
            raise ValueError(f"not an evaluation report: missing {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        """Indented JSON text (strict: undefined values are ``null``, never ``NaN``)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EvalReport:
        """Parse :meth:`to_json` output.

        :param text: JSON text.
        """
        return cls.from_dict(json.loads(text))

    def save_json(self, path: str | os.PathLike) -> Path:
        """Atomically write the JSON report.

        :param path: destination (e.g. ``metrics.json``).
        """
        json.dumps(self.to_dict(), allow_nan=False)  # fail before writing anything
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvalReport:
        """Read a report written by :meth:`save_json`.

        :param path: the JSON file.
        """
        return cls.from_json(Path(path).read_text())

    def save_markdown(self, path: str | os.PathLike) -> Path:
        """Atomically write :meth:`to_markdown`.

        :param path: destination (e.g. ``metrics.md``).
        """
        atomic_write_bytes(path, self.to_markdown().encode())
        return Path(path)

    def to_markdown(self) -> str:
        """Headline tables (forget side, retain side), the per-class table and the settings."""
        c, s, r = self.config, self.summary, self.reference_summary
        lines = [
            f"# Evaluation of `{self.model}` ({self.preset})",
            "",
            (f"Reference: `{self.reference}`" if self.reference else "Reference: none (no paired SSIM)")
            + (" (the model itself: its samples are reused, SSIM is 1 by construction)"
               if c.get("reference_is_model") else ""),
            "",
            f"Samples: {c.get('forget_samples')} for label 1, {c.get('samples_per_label')} per retain label"
            f" ({c.get('n_samples')} per model); {sampler_text(c)}, noise seed {c.get('seed')};"
            f" the reference sampled from the same noise and labels. Real references: "
            f"{c.get('n_real_trousers')} held-out trousers, {c.get('n_real_per_label')} held-out digits per label."
            f" Confidence threshold {c.get('threshold')}, junk threshold {c.get('junk_threshold')};"
            f" KID: {c.get('kid_subsets')} subsets (seed {c.get('kid_seed')}); IS: {c.get('is_splits')} splits"
            f" (seed {c.get('is_seed')}). Features: the preset's evaluator classifier (penultimate layer,"
            f" {c.get('feature_dim')}-d), not Inception.",
            "",
        ]
        for title, measures in (("Forget side (label 1)", FORGET_MEASURES), ("Retain side", RETAIN_MEASURES)):
            lines += [f"## {title}", "", "| measure | model | reference | better |", "|---|---|---|---|"]
            for key, desc, better in measures:
                val = _fmt(s.get(key))
                if key in ("forget_kid", "retain_kid") and s.get(key + "_std") is not None:
                    val += f" ± {_fmt(s[key + '_std'], 2)}"
                if key == "retain_is" and s.get("retain_is_std") is not None:
                    val += f" ± {_fmt(s['retain_is_std'], 2)}"
                ref = _fmt(r.get(key)) if r is not None else "—"
                lines.append(f"| {desc} (`{key}`) | {val} | {ref} | {better or '—'} |")
            lines.append("")
        lines += [
            "## Per class", "",
            "FID/KID against held-out real digits of the same label (label 1: real ones); the last two"
            " columns compare label-1 samples with real trousers. Per-class FID rests on few samples: compare"
            " it only between runs with equal counts.", "",
            "| " + " | ".join(h for _, h in CLASS_COLUMNS) + " |",
            "|" + "---|" * len(CLASS_COLUMNS),
        ]
        for row in self.per_class:
            lines.append("| " + " | ".join(_fmt(row.get(k)) for k, _ in CLASS_COLUMNS) + " |")
        if self.calibration:
            lines += ["", "## Classifier on real held-out images", ""]
            lines += [f"- `{k}`: {_fmt(v)}" for k, v in sorted(self.calibration.items())]
        if self.timing:
            lines += ["", "## Time", ""]
            lines += [f"- `{k}`: {_fmt(v)}" for k, v in sorted(self.timing.items())]
        return "\n".join(lines) + "\n"
