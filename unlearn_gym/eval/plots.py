"""PNG plots and sample grids: λ trajectories, loss components, forget-vs-retain scatter, sample grids.

Figures are drawn with matplotlib's object API (no pyplot, no display needed) and written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from unlearn_gym.checkpoints import atomic_write_bytes
from unlearn_gym.data import CONTAMINATED_LABEL, NUM_LABELS
from unlearn_gym.imaging import image_grid


def new_figure(size: tuple[float, float] = (6.0, 4.0)) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'unlearn-gym[eval]'") from e
    return Figure(figsize=size, dpi=100, layout="constrained")


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _series(values: Sequence[float] | Mapping[str, Sequence[float]], default: str) -> dict[str, list[float]]:
    if isinstance(values, Mapping):
        return {str(k): [float(v) for v in vs] for k, vs in values.items()}
    return {default: [float(v) for v in values]}


def plot_lambda_trajectory(
    lambdas: Sequence[float] | Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    bounds: tuple[float, float] | None = None,
    title: str = "λ per unlearning step",
) -> Path:
    """Line plot of λ against the step, one line per run.

    :param lambdas: λ per step, or a mapping run name -> λ per step.
    :param path: PNG destination.
    :param bounds: optional (λ_min, λ_max) drawn as dashed lines.
    :param title: figure title.
    """
    fig = new_figure()
    ax = fig.add_subplot()
    for name, vs in _series(lambdas, "λ").items():
        ax.plot(range(len(vs)), vs, label=name, lw=1.2)
    if bounds is not None:
        for b in bounds:
            ax.axhline(b, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="step", ylabel="λ", title=title)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_loss_components(
    components: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    log_y: bool = False,
    title: str = "loss components per step",
) -> Path:
    """One line per loss component (e.g. ``L_x``, ``L_a``, ``||g_x||``, ``||g_a||``, ``KL``) against the step.

    :param components: mapping component name -> value per step.
    :param path: PNG destination.
    :param log_y: logarithmic y axis (needs positive values).
    :param title: figure title.
    """
    if not components:
        raise ValueError("no loss components to plot")
    fig = new_figure()
    ax = fig.add_subplot()
    for name, vs in _series(components, "loss").items():
        ax.plot(range(len(vs)), vs, label=name, lw=1.2)
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="value", title=title)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_forget_retain(
    runs: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    x: str = "trouser_rate",
    y: str = "retain_fid",
    title: str = "forgetting vs retention",
) -> Path:
    """Scatter of a forget-side measure against a retain-side measure, one labelled point per run.

    :param runs: mapping run name -> :class:`~unlearn_gym.eval.report.EvalReport` or summary dict.
    :param path: PNG destination.
    :param x: summary key on the x axis (default: trouser rate).
    :param y: summary key on the y axis (default: retain FID).
    :param title: figure title.
    :raises KeyError: a run lacks one of the keys.
    """
    if not runs:
        raise ValueError("no runs to plot")
    fig = new_figure()
    ax = fig.add_subplot()
    for name, run in runs.items():
        s = run.summary if hasattr(run, "summary") else run
        if s.get(x) is None or s.get(y) is None:
            raise KeyError(f"run {name!r} has no measured {x!r} and {y!r}")
        ax.scatter([s[x]], [s[y]], s=30)
        ax.annotate(name, (s[x], s[y]), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def paired_grid(
    model_images: torch.Tensor,
    labels: torch.Tensor,
    reference_images: torch.Tensor | None = None,
    *,
    first: torch.Tensor | None = None,
    per_row: int = 8,
    scale: int = 2,
) -> Any:
    """RGB grid: one row per label (label 1 first, then 0, 2..9); reference left, model right.

    :param model_images: the evaluated model's samples.
    :param labels: their labels (sample ``i`` of both models shares noise and label).
    :param reference_images: the reference model's samples (``None``: model only).
    :param first: optional boolean mask of samples shown first within their label (e.g. the label-1
        pairs where the reference drew a trouser), the rest follow in order.
    :param per_row: samples per label and model.
    :param scale: integer upscaling.
    :returns: uint8 ``(H, W, 3)`` array.
    """
    order = [CONTAMINATED_LABEL] + [lab for lab in range(NUM_LABELS) if lab != CONTAMINATED_LABEL]
    blank = torch.zeros(1, *model_images.shape[1:])  # mid-grey spacer
    tiles, ncol = [], per_row if reference_images is None else 2 * per_row + 1
    for lab in order:
        idx = torch.nonzero(labels == lab).flatten()
        if first is not None:
            idx = torch.cat([idx[first[idx]], idx[~first[idx]]])
        idx = idx[:per_row]
        if len(idx) == 0:
            continue
        pad = blank.expand(per_row - len(idx), *blank.shape[1:])
        row = [model_images[idx], pad]
        if reference_images is not None:
            row = [reference_images[idx], pad, blank, *row]
        tiles.append(torch.cat(row))
    return image_grid(torch.cat(tiles), ncol, scale=scale)


def grid_rows(labels: torch.Tensor) -> list[int]:
    """The labels of :func:`paired_grid`'s rows, top to bottom (label 1 first, labels without samples left out).

    :param labels: the samples' labels.
    """
    order = [CONTAMINATED_LABEL] + [lab for lab in range(NUM_LABELS) if lab != CONTAMINATED_LABEL]
    return [lab for lab in order if bool((labels == lab).any())]


def sample_grid_figure(report: Any, *, per_row: int = 8, scale: int = 2) -> Any:
    """:func:`paired_grid` of an evaluation report's samples as a figure with a title, the label of
    every row (label 1, the contaminated one, first) and which side is the reference and which the model.

    :param report: an :class:`~unlearn_gym.eval.report.EvalReport` made with ``keep_samples=True``.
    :param per_row: samples per label and model.
    :param scale: integer upscaling.
    :returns: a matplotlib ``Figure``.
    """
    from unlearn_gym.eval.report import sampler_text

    if report.samples is None:
        raise ValueError("the report carries no samples; evaluate with keep_samples=True")
    s = report.samples
    ref = s.get("reference")
    grid = paired_grid(s["model"], s["labels"], ref, first=s.get("reference_trouser"), per_row=per_row, scale=scale)
    side, pad = s["model"].shape[-1] * scale, 1  # image_grid's tile side and padding
    height, width = grid.shape[:2]
    fig = new_figure((width / 100 + 1.6, height / 100 + 1.2))
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    rows = grid_rows(s["labels"])
    ax.set_yticks([pad + r * (side + pad) + side / 2 for r in range(len(rows))],
                  [f"{lab} (contaminated)" if lab == CONTAMINATED_LABEL else str(lab) for lab in rows])
    block = per_row * (side + pad)
    if ref is None:
        ax.set_xticks([pad + block / 2], ["model"])
    else:
        ax.set_xticks([pad + block / 2, pad + block + side + pad + block / 2],
                      [f"reference: {report.reference}", "model (same noise and labels)"])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize="small")
    cfg = getattr(report, "config", None) or {}
    ax.set_title(f"{report.model} ({report.preset}): one row per label\n"
                 f"{sampler_text(cfg)}, noise seed {cfg.get('seed')}", fontsize="medium")
    return fig


def save_sample_grid(report: Any, path: str | os.PathLike, *, per_row: int = 8, scale: int = 2) -> Path:
    """Write :func:`sample_grid_figure` (the labelled :func:`paired_grid`) of an evaluation report as PNG.

    The label-1 row shows the pairs where the reference drew a trouser first: they show whether the
    model forgot them.

    :param report: an :class:`~unlearn_gym.eval.report.EvalReport` made with ``keep_samples=True``.
    :param path: PNG destination.
    :param per_row: samples per label and model.
    :param scale: integer upscaling.
    """
    return save_figure(sample_grid_figure(report, per_row=per_row, scale=scale), path)
