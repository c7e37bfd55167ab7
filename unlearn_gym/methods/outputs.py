"""Files of an unlearning run: the model, the per-step log (CSV, tensorboard), plots, evaluation.

Layout of ``out_dir`` after :func:`write_run` and :func:`evaluate_run`::

    model.pt, model.json   the unlearned DDPM (kind "unlearned"; `unlearn-gym evaluate` loads it)
    log.csv                one row per step: λ, losses, gradient norms, ...
    config.json            method, preset, task, steps, seed, every resolved parameter
    lambda.png             λ per step (methods with a λ)
    losses.png             L_x, L_a and the loss value per step
    metrics.json, metrics.md, samples.png   the evaluation suite's report
    tb/                    tensorboard events (when tensorboard is installed)

Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import Any

from unlearn_gym.checkpoints import atomic_write_bytes, save_checkpoint, write_json
from unlearn_gym.methods.runner import RunResult

#: loss components drawn in ``losses.png`` (those present in the log)
PLOTTED_LOSSES = ("loss", "L_x", "L_a", "L_other", "kl")


class TensorBoardLog:
    """A :func:`~unlearn_gym.methods.run` callback writing each step's numbers to tensorboard.

    Does nothing (and says so once on stderr) when tensorboard is not installed. The event file is
    created with the first row, so a run that fails before its first step leaves no directory.

    :param log_dir: event directory (``None``: disabled).
    """

    def __init__(self, log_dir: str | os.PathLike | None):
        self.writer: Any = None
        self.log_dir = log_dir
        self._writer_cls: Any = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in the [sb3] extra
            print("tensorboard not installed; the run is logged to CSV only (pip install tensorboard)",
                  file=sys.stderr)
            return
        self._writer_cls = SummaryWriter

    def __call__(self, row: dict[str, float]) -> None:
        """Write one log row at its ``step``.

        :param row: a step's log (numbers only are written).
        """
        if self._writer_cls is None:
            return
        if self.writer is None:
            self.writer = self._writer_cls(str(self.log_dir))
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"unlearn/{key}", value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_csv_bytes(log: list[dict[str, float]]) -> bytes:
    """The log as CSV: one column per key (in first-seen order), one row per step.

    :param log: :attr:`RunResult.log`.
    """
    keys: list[str] = []
    for row in log:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(log)
    return buf.getvalue().encode()


def write_run(result: RunResult, out_dir: str | os.PathLike, *, command: str | None = None) -> dict[str, Path]:
    """Save the model, the log, the config and the λ / loss plots of a run.

    :param result: the output of :func:`~unlearn_gym.methods.run`.
    :param out_dir: destination directory (created).
    :param command: the command line that made the run (recorded in the sidecars).
    :returns: the paths written, by name.
    """
    from unlearn_gym.eval.plots import plot_lambda_trajectory, plot_loss_components

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {**result.config(), "command": command}
    payload: dict[str, Any] = {"model": result.model.state_dict(), "method": result.method,
                               "extra": result.extra_state, "model_family": result.params.get("model", "ddpm")}
    paths = {"model": save_checkpoint(out / "model.pt", "unlearned", result.preset, payload, config)}
    atomic_write_bytes(out / "log.csv", log_csv_bytes(result.log))
    paths["log"] = out / "log.csv"
    write_json(out / "config.json", config)
    paths["config"] = out / "config.json"
    lam = result.column("lambda")
    if result.log and not all(math.isnan(v) for v in lam):
        bounds = (result.params["lam_min"], result.params["lam_max"]) if "lam_min" in result.params else None
        paths["lambda_plot"] = plot_lambda_trajectory({result.method: lam}, out / "lambda.png", bounds=bounds)
    comps = {k: result.column(k) for k in PLOTTED_LOSSES if any(k in row for row in result.log)}
    if comps:
        paths["loss_plot"] = plot_loss_components(comps, out / "losses.png",
                                                  title=f"{result.method}: loss components per step")
    return paths


def evaluate_run(
    result: RunResult,
    out_dir: str | os.PathLike,
    *,
    samples_per_label: int = 50,
    forget_samples: int | None = None,
    steps: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> Any:
    """Evaluate the unlearned model against its starting point and write ``metrics.json`` & co.

    :param result: the output of :func:`~unlearn_gym.methods.run`.
    :param out_dir: destination directory.
    :param samples_per_label: samples per retain label (see :func:`~unlearn_gym.eval.evaluate.evaluate`).
    :param forget_samples: samples of label 1 (default 6x ``samples_per_label``).
    :param steps: DDIM steps.
    :param seed: seed of the evaluation noise.
    :param progress: show the sampling progress bar.
    :returns: the :class:`~unlearn_gym.eval.report.EvalReport`.
    """
    from unlearn_gym.eval.evaluate import evaluate, write_evaluation
    from unlearn_gym.pretrained import DEFAULT_RATIO, load_pretrained

    family = result.params.get("model", "ddpm")
    reference = load_pretrained(result.preset, result.params.get("checkpoint"), model=family,
                                ratio=result.params.get("data_ratio") or DEFAULT_RATIO)
    report = evaluate(result.model, reference, result.preset, samples_per_label=samples_per_label,
                      forget_samples=forget_samples, steps=steps, seed=seed,
                      model_name=f"{result.method} on {result.task} ({len(result.log)} steps)",
                      reference_name="pretrained" if result.params.get("checkpoint") is None
                      else str(result.params["checkpoint"]), progress=progress)
    if result.task.startswith("erase-"):
        digit = int(result.task[6:])
        report.summary.update(erase_summary(report.per_class, digit))
        if report.reference_summary is not None:
            ref_rows = [{"label": r["label"], "n": r["n"], "accuracy": r.get("reference_accuracy")}
                        for r in report.per_class]
            report.reference_summary.update(erase_summary(ref_rows, digit))
    scale = max(2, 32 // report.samples["model"].shape[-1])
    write_evaluation(report, out_dir, scale=scale)
    return report


def erase_summary(per_class: list[dict[str, Any]], digit: int) -> dict[str, Any]:
    """Headline numbers of an ``erase-<digit>`` task from an evaluation's per-class rows.

    ``erased_accuracy``: share of the erased digit's samples the classifier calls that digit
    (target < 0.1); ``other_digit_accuracy`` / ``min_other_digit_accuracy``: sample-weighted mean and
    minimum of the per-label accuracy over every other label, 1 included (target >= 0.85).

    :param per_class: ``EvalReport.per_class`` (rows with ``label``, ``accuracy`` and optionally ``n``).
    :param digit: the erased digit.
    """
    rows = {int(r["label"]): r for r in per_class}
    if digit not in rows:
        raise ValueError(f"no evaluation row for the erased digit {digit}")
    others = [r for lab, r in rows.items() if lab != digit and r.get("accuracy") is not None]
    n = [float(r.get("n") or 1) for r in others]
    acc = [float(r["accuracy"]) for r in others]
    return {
        "erased_digit": digit,
        "erased_accuracy": rows[digit].get("accuracy"),
        "other_digit_accuracy": sum(a * w for a, w in zip(acc, n)) / sum(n) if others else None,
        "min_other_digit_accuracy": min(acc) if others else None,
    }
