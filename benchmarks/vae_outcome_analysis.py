"""Tables of ``benchmarks/vae_outcome_validity.py``'s JSON: does the outcome track the suite's retain side?

Prints (markdown) the Spearman rank correlations of the outcome, its retain part and the candidate
terms with the evaluation suite's retain FID, retain KID, retain accuracy and min per-digit accuracy,
per split and overall, and the "misses": models with outcome >= ``--good`` whose retain FID is more
than ``--fid-factor`` x the pretrained VAE's (and, for comparison, x the pretrained DDPM's).

    python benchmarks/vae_outcome_analysis.py docs/vae/outcome-validity-v2.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

SCORES = ("outcome", "retain_mean", "retain_worst", "retain_drop", "one_rate", "cand_feat_fd", "cand_feat_paired",
          "cand_pixel_mse", "cand_soft_acc")
SUITE = ("retain_fid", "retain_kid", "retain_accuracy", "min_retain_accuracy")


def spearman(rows: list[dict[str, Any]], a: str, b: str) -> float:
    """Spearman's ρ of two fields over ``rows`` (ties averaged)."""
    from scipy.stats import spearmanr

    return float(spearmanr([r[a] for r in rows], [r[b] for r in rows]).statistic)


def correlation_table(rows: list[dict[str, Any]], scores: tuple[str, ...] = SCORES) -> str:
    """Markdown table: one line per score, one column per suite measure."""
    keys = [s for s in scores if all(s in r for r in rows)]
    lines = ["| score \\ suite | " + " | ".join(SUITE) + " |", "|---" * (len(SUITE) + 1) + "|"]
    for s in keys:
        lines.append(f"| {s} | " + " | ".join(f"{spearman(rows, s, m):+.2f}" for m in SUITE) + " |")
    return "\n".join(lines)


def misses(rows: list[dict[str, Any]], ref_fid: float, good: float, factor: float) -> list[dict[str, Any]]:
    """Models with outcome >= ``good`` and retain FID > ``factor`` x ``ref_fid``."""
    return [r for r in rows if r["outcome"] >= good and r["retain_fid"] > factor * ref_fid]


BINS = (("≥ 0.8", 0.8, 9.0), ("0 to 0.8", 0.0, 0.8), ("−0.5 to 0", -0.5, 0.0), ("< −0.5", -9.0, -0.5))


def bin_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: the suite's retain side (median, range) of the models in each outcome bin."""
    import statistics

    lines = ["| outcome | models | retain FID | retain accuracy | min digit accuracy | trouser rate |",
             "|---|---|---|---|---|---|"]
    for name, lo, hi in BINS:
        sub = [r for r in rows if lo <= r["outcome"] < hi]
        if not sub:
            continue
        cells = []
        for k, fmt in (("retain_fid", ".1f"), ("retain_accuracy", ".3f"), ("min_retain_accuracy", ".3f"),
                       ("trouser_rate", ".3f")):
            v = [r[k] for r in sub]
            cells.append(f"{statistics.median(v):{fmt}} ({min(v):{fmt}}–{max(v):{fmt}})")
        lines.append(f"| {name} | {len(sub)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def damage_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of a damage ladder (``--damage``): one line per base model and σ, noise draws joined by /."""
    lines = ["| base model | σ | outcome | retain_mean | one_rate | suite retain FID | retain acc. | min digit |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["base"], r["sigma"]), []).append(r)
    for (base, sigma), sub in groups.items():
        def j(k: str, fmt: str, sub: list[dict[str, Any]] = sub) -> str:
            return " / ".join(f"{r[k]:{fmt}}" for r in sub)
        lines.append(f"| {base} | {sigma} | {j('outcome', '+.2f')} | {j('retain_mean', '.2f')}"
                     f" | {j('one_rate', '.2f')} | {j('retain_fid', '.1f')} | {j('retain_accuracy', '.3f')}"
                     f" | {j('min_retain_accuracy', '.2f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("--good", type=float, default=0.8)
    ap.add_argument("--fid-factor", type=float, default=3.0)
    a = ap.parse_args()
    d = json.load(open(a.json))
    rows, refs = d["rows"], d["references"]
    if rows and "base" in rows[0]:
        print(f"{d['command']}; {d['seconds']} s; pretrained VAE {refs['pretrained_cvae']}")
        print(damage_table(rows))
        return
    vae, ddpm = refs["pretrained_cvae"], refs["pretrained_ddpm_ddim50"]
    print(f"{len(rows)} models; {d['command']}; {d['seconds']} s")
    print(f"pretrained VAE: retain FID {vae['retain_fid']:.2f}, KID {vae['retain_kid']:.2f}, acc"
          f" {vae['retain_accuracy']:.3f}, min digit {vae['min_retain_accuracy']:.3f}")
    print(f"pretrained DDPM (DDIM 50): retain FID {ddpm['retain_fid']:.2f}, acc {ddpm['retain_accuracy']:.3f}")
    for name, sub in (("all", rows), ("train", [r for r in rows if r["split"] == "train"]),
                      ("test", [r for r in rows if r["split"] == "test"])):
        print(f"\n### {name} ({len(sub)} models)\n")
        print(correlation_table(sub))
    print("\n" + bin_table(rows) + "\n")
    good = [r for r in rows if r["outcome"] >= a.good]
    print(f"\noutcome >= {a.good}: {len(good)} models; retain FID {min(r['retain_fid'] for r in good):.2f}"
          f" .. {max(r['retain_fid'] for r in good):.2f}; retain acc"
          f" {min(r['retain_accuracy'] for r in good):.3f} .. {max(r['retain_accuracy'] for r in good):.3f};"
          f" min digit acc >= {min(r['min_retain_accuracy'] for r in good):.3f}")
    for label, ref in (("pretrained VAE", vae["retain_fid"]), ("pretrained DDPM", ddpm["retain_fid"])):
        m = misses(rows, ref, a.good, a.fid_factor)
        print(f"misses vs {label} (retain FID > {a.fid_factor} x {ref:.2f} = {a.fid_factor * ref:.2f}):"
              f" {len(m)}  {dict(Counter(r['policy'] for r in m))}")
    for factor in (1.1, 1.25, 1.5, 2.0):
        m = misses(rows, vae["retain_fid"], a.good, factor)
        print(f"  outcome >= {a.good} and retain FID > {factor} x VAE's: {len(m)}"
              f" {sorted({(r['instance'][10:], r['policy'], r['seed']) for r in m})[:8]}")
    acc = [r for r in good if r["retain_accuracy"] < vae["retain_accuracy"] - 0.05]
    print(f"outcome >= {a.good} and suite retain accuracy > 5 points below the VAE's: {len(acc)}")
    worst = sorted(rows, key=lambda r: -r["retain_fid"])[:10]
    print("\nhighest retain FID:")
    for r in worst:
        print(f"  {r['instance']} {r['policy']} s{r['seed']}: FID {r['retain_fid']:.1f} acc {r['retain_accuracy']:.3f}"
              f" min {r['min_retain_accuracy']:.3f} outcome {r['outcome']:+.3f} retain_mean {r['retain_mean']:.3f}")


if __name__ == "__main__":
    main()
