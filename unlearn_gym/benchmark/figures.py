"""Figures of a benchmark report: the Pareto front, λ trajectories and time per entry (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_gym.eval.plots import new_figure, save_figure


def pareto_plot(agg: dict[str, Any], titles: dict[str, str], path: str | os.PathLike, *, title: str = "",
                x: str = "forget_score", y: str = "retain_fid") -> Path | None:
    """Static SISS over its λ and ρ grid as lines, every other entry as a labelled point (means,
    95 % CI bars), forget score against retain FID.

    :param agg: ``aggregate(...)[instance]``.
    :param titles: entry -> label.
    :param path: PNG path.
    :param title: figure title.
    :param x: measure on the x axis.
    :param y: measure on the y axis.
    """
    pts = {e: row for e, row in agg.items() if x in row and y in row}
    if not pts:
        return None
    fig = new_figure((7, 5))
    ax = fig.subplots()
    for prefix, label, style in (("siss-lam", "static SISS, λ grid", "o-"), ("siss-rho", "static SISS, ρ grid", "s--")):
        grid = sorted([e for e in pts if e.startswith(prefix)] + (["siss"] if "siss" in pts else []),
                      key=lambda e: pts[e][x]["mean"])
        if len(grid) > 1:
            ax.plot([pts[e][x]["mean"] for e in grid], [pts[e][y]["mean"] for e in grid], style, color="gray",
                    alpha=0.7, label=label)
            for e in grid:
                ax.annotate(titles.get(e, e).replace("SISS ", ""), (pts[e][x]["mean"], pts[e][y]["mean"]),
                            fontsize=7, color="gray", xytext=(3, -9), textcoords="offset points")
    from matplotlib import colormaps

    others = [e for e in pts if not e.startswith(("siss-lam", "siss-rho"))]
    colors = colormaps["tab20"].colors
    for i, e in enumerate(others):  # a colour and a marker each: 20 entries stay distinguishable
        row = pts[e]
        xe = row[x]["ci"] if np.isfinite(row[x]["ci"]) else None
        ye = row[y]["ci"] if np.isfinite(row[y]["ci"]) else None
        ax.errorbar(row[x]["mean"], row[y]["mean"], xerr=xe, yerr=ye, fmt="osD^vP*X<>"[i % 10], capsize=2,
                    color=colors[i % len(colors)], alpha=0.85, label=titles.get(e, e))
    ys = [row[y]["mean"] for row in pts.values()]
    log = min(ys) > 0 and max(ys) / min(ys) > 20  # destroyed models would flatten the rest
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("forget score (lower = more forgotten)")
    ax.set_ylabel("retain FID (lower = better" + (", log scale)" if log else ")"))
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def lambda_plot(cells: list[dict[str, Any]], titles: dict[str, str], path: str | os.PathLike, *, title: str = ""
                ) -> Path | None:
    """Mean λ per step of every entry that chooses λ (adaptive-VI, policies, agents).

    :param cells: finished cells of one instance.
    :param titles: entry -> label.
    :param path: PNG path.
    :param title: figure title.
    """
    by: dict[str, list[list[float]]] = {}
    for c in cells:
        if c.get("lambdas") and c.get("kind") in ("method", "policy", "agent") and c.get("group") == "table":
            lam = c["lambdas"]
            if len(set(lam)) > 1 or c["kind"] != "method":
                by.setdefault(c["entry"], []).append(lam)
    if not by:
        return None
    fig = new_figure((7, 4))
    ax = fig.subplots()
    for e, runs in by.items():
        n = min(len(r) for r in runs)
        a = np.asarray([r[:n] for r in runs], dtype=float)
        ax.plot(np.arange(1, n + 1), a.mean(0), label=f"{titles.get(e, e)} (n={len(runs)})")
    ax.set_xlabel("unlearning step")
    ax.set_ylabel("λ")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def time_plot(entries: dict[str, Any], titles: dict[str, str], path: str | os.PathLike) -> Path | None:
    """Stacked mean time per cell of every entry: unlearning (agent training included), evaluation,
    outcome score.

    :param entries: ``performance(...)["entries"]``.
    :param titles: entry -> label.
    :param path: PNG path.
    """
    if not entries:
        return None
    names = list(entries)
    fig = new_figure((7, 0.3 * len(names) + 1.5))
    ax = fig.subplots()
    left = np.zeros(len(names))
    for k, label in (("unlearn_s", "unlearning / training"), ("eval_s", "evaluation suite"),
                     ("outcome_s", "outcome score")):
        v = np.asarray([entries[n].get(k, 0.0) for n in names])
        ax.barh([titles.get(n, n) for n in names], v, left=left, label=label)
        left += v
    ax.set_xlabel("seconds per cell (mean)")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)
