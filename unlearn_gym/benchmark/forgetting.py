"""The benchmark's "did it forget" table: every row's final model against the retrained reference.

With ``BenchSettings(forget_tests=True)`` (``unlearn-gym benchmark --forget-tests``) every cell runs
:func:`unlearn_gym.eval.forgetting.forget_tests` on its final model, against the reference retrained
without the instance's forget set (the trousers, or for ``erase-<d>`` every training image of digit
``d``), and keeps a short summary (:func:`forget_summary`). The report then says, per row and over
seeds, whether the model forgot like the retrained model, or only stopped drawing the forget set:

* **forget loss ratio**: the model's denoising loss on the forget images over the retrained model's
  (1 = retrained; below 1 the model still fits the images it was asked to forget);
* **early relearning**: the forget rate (trouser rate, or the erased digit's rate: label-``d``
  samples classified ``d``) after the first relearning checkpoint (a few fine-tuning steps on the
  forget set), against the retrained model's (a model that kept the concept regains it at once);
* **membership AUC difference** (model − retrained; at this size the attack has little power, see
  docs/forgetting.md).

A cell is **like retrained** when its loss-ratio CI reaches 1 (or lies above it) and it does not
relearn faster than the retrained model; **stopped drawing only** when its forget rate is at most
half the pretrained model's but it fails one of these; **not forgotten** otherwise. An erase task
whose retrained reference is not shipped fails its first cell with the error naming the
``unlearn-gym pretrain --retain-only --task erase-<d>`` command (docs/forgetting.md).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from unlearn_gym.stats import ci95

#: the relearning settings of a benchmark cell (one seed, the cell's; the checkpoints of docs/forgetting.md)
RELEARN_KW: dict[str, Any] = {"n_samples": 100}
VERDICTS = ("like retrained", "stopped drawing only", "not forgotten")

_REFS: dict[str, dict[str, Any]] = {}


def _references(preset: str, ratio: float, family: str, device: str, task: str = "trousers") -> dict[str, Any]:
    """The retrained model of ``task``, the pretrained model, the data at ``ratio`` and the classifier
    (once per process)."""
    key = f"{preset}|{ratio}|{family}|{device}|{task}"
    if key not in _REFS:
        from unlearn_gym.data import build_contaminated_mnist
        from unlearn_gym.pretrained import load_classifier, load_pretrained

        _REFS[key] = {
            "retrained": load_pretrained(preset, ratio=ratio, model=family, variant="retrained", task=task,
                                         device=device).eval(),
            "pretrained": load_pretrained(preset, ratio=ratio, model=family, device=device).eval(),
            "data": build_contaminated_mnist(preset, ratio=ratio),
            "classifier": load_classifier(preset),
            "curves": {},  # the retrained model's relearning curve per seed
        }
    return _REFS[key]


def forget_summary(model: nn.Module, preset: str, ratio: float, family: str, seed: int,
                   device: str = "cpu", task: str = "trousers") -> dict[str, Any]:
    """The forget tests of one final model, summarised for the report.

    :param model: the cell's final model.
    :param preset: its preset.
    :param ratio: the contamination ratio its pretrained model saw (selects the forget set and F0).
    :param family: ``"ddpm"`` or ``"cvae"``.
    :param seed: the cell's seed (loss noise, bootstrap, fine-tuning and sampling).
    :param device: where the models run.
    :param task: the instance's task (``"trousers"`` or ``"erase-<d>"``): whose reference and rate.
    :returns: ``task``, ``loss_ratio`` (value, low, high), ``auc_difference`` (value, low, high),
        ``early_relearn`` (steps, model rate, retrained rate), ``steps_to_half_f0`` (model,
        retrained), ``f0``, ``forget_rate`` (the task's rate before relearning; ``trouser_rate``, the
        same number, kept for trousers cells made before erase tasks), ``verdict`` (one of
        :data:`VERDICTS`), ``seconds``.
    """
    from unlearn_gym.eval.forgetting import forget_tests

    refs = _references(preset, ratio, family, device, task)
    res = forget_tests(model, preset, task=task, ratio=ratio, classifier=refs["classifier"],
                       retrained=refs["retrained"], pretrained=refs["pretrained"], data=refs["data"], seed=seed,
                       relearn_kw=RELEARN_KW, reference_curve=refs["curves"].get(seed))
    refs["curves"][seed] = res["relearning"]["retrained"]
    mem, rel = res["membership"], res["relearning"]
    curve, ref = rel["model"], rel["retrained"]
    k = next((i for i, st in enumerate(curve["steps"]) if st > 0), 0)
    lr, d = mem["forget_loss_ratio"], mem["difference"]
    rate0 = float(curve["rates"][0])
    faster = res["verdict"]["relearning"].startswith("relearns faster")
    if lr["high"] >= 1.0 and not faster:
        verdict = VERDICTS[0]
    elif rate0 <= 0.5 * float(rel["f0"]):
        verdict = VERDICTS[1]
    else:
        verdict = VERDICTS[2]
    return {
        "task": task,
        "loss_ratio": [lr["ratio"], lr["low"], lr["high"]],
        "auc_difference": [d["auc_mean"], d["low"], d["high"]],
        "early_relearn": [curve["steps"][k], curve["rates"][k], ref["rates"][k]],
        "steps_to_half_f0": [curve["steps_to_half_f0"], ref["steps_to_half_f0"]],
        "f0": rel["f0"], "forget_rate": rate0, "trouser_rate": rate0, "relearns_faster": faster, "verdict": verdict,
        "seconds": res["seconds"],
    }


def _pm(vals: list[float], digits: int = 3) -> str:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return "—"
    mean, half = ci95(vals)
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if len(vals) > 1 else f"{mean:.{digits}f}"


def forget_table(cells: list[dict[str, Any]], order: list[str]) -> list[str]:
    """Markdown lines of the "did it forget" table (one block per instance), ``[]`` without forget tests.

    :param cells: the finished cells (``forget`` present where the tests ran).
    :param order: entry names in report order.
    """
    tested = [c for c in cells if c.get("forget")]
    if not tested:
        return []
    from unlearn_gym.eval.forgetting import forget_rate_name

    lines = ["## Did it forget? (against the model retrained without the forget set)", "",
             "Per row, mean ± 95 % CI over seeds. **Forget rate**: the trouser rate (erase tasks: label-d samples"
             " classified d). **Loss ratio**: the model's denoising loss on the forget"
             " images over the retrained model's (1 = retrained, below 1 = still fits them). **Early"
             " relearning**: forget rate after the first relearning checkpoint, the retrained model's beside it."
             " **Verdict**: seeds per verdict (like retrained / stopped drawing only / not forgotten;"
             " docs/forgetting.md).", ""]
    for inst in dict.fromkeys(c["instance"] for c in tested):
        rows = [c for c in tested if c["instance"] == inst]
        k = rows[0]["forget"]["early_relearn"][0]
        task = rows[0]["forget"].get("task", "trousers")
        lines += [f"### {inst}", "",
                  f"| row | seeds | {forget_rate_name(task)} | loss ratio | AUC difference | relearn @{k} (retrained)"
                  " | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for name in [n for n in order if any(c["entry"] == n for c in rows)]:
            fs = [c["forget"] for c in rows if c["entry"] == name]
            counts = " / ".join(str(sum(f["verdict"] == v for f in fs)) for v in VERDICTS)
            lines.append(
                f"| {name} | {len(fs)} | {_pm([f.get('forget_rate', f['trouser_rate']) for f in fs])} |"
                f" {_pm([f['loss_ratio'][0] for f in fs])} | {_pm([f['auc_difference'][0] for f in fs])} |"
                f" {_pm([f['early_relearn'][1] for f in fs])} ({_pm([f['early_relearn'][2] for f in fs])}) |"
                f" {counts} |")
        lines.append("")
    lines += correlation_lines(tested)
    return lines


def correlation_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Is the outcome score honest? Its Spearman rank correlation with the forget tests over the cells.

    :param cells: cells with both ``outcome`` and ``forget``.
    """
    pairs = [(c["outcome"]["outcome"], c["forget"]["loss_ratio"][0], c["forget"]["early_relearn"][1])
             for c in cells if c.get("outcome") and c.get("forget")]
    if len(pairs) < 4:
        return []
    from scipy.stats import spearmanr

    out, ratio, early = (list(x) for x in zip(*pairs, strict=True))
    r1, p1 = spearmanr(out, ratio)
    r2, p2 = spearmanr(out, early)
    gamed = sorted({c["entry"] for c in cells if c.get("outcome") and c["outcome"]["outcome"] >= 0.5
                    and c["forget"]["verdict"] != VERDICTS[0]})
    lines = ["**Does the outcome score see forgetting?** Spearman rank correlation over the "
             f"{len(pairs)} final models: outcome vs loss ratio ρ = {r1:+.2f} (p = {p1:.2g}), outcome vs early"
             f" relearning ρ = {r2:+.2f} (p = {p2:.2g}) (forgetting = a higher loss ratio, a lower relearning rate).",
             ""]
    if gamed:
        lines += ["Rows with an outcome ≥ 0.5 on some seed whose model is not like the retrained one (they stopped"
                  " drawing the trousers without forgetting them): " + ", ".join(f"`{g}`" for g in gamed) + ".", ""]
    return lines
