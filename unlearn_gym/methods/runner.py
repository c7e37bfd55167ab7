"""``run(name, ...)``: one unlearning run of a registered method, with a per-step log."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from unlearn_gym.methods.registry import check_model, check_task, get_method, split_params
from unlearn_gym.methods.setup import build_setup
from unlearn_gym.presets import get_preset

#: log keys whose non-finite value means the run diverged (it stops there)
WATCHED = ("loss", "grad_norm_x", "grad_norm_a", "total_grad_norm")


@dataclass
class RunResult:
    """The outcome of :func:`run`.

    :param method: the method's name.
    :param preset: the preset's name.
    :param task: the task.
    :param steps: steps requested.
    :param seed: seed of the run's generator.
    :param params: every resolved parameter (the method's own and the setup's).
    :param model: the unlearned model (eval mode).
    :param log: one dict per step made: ``step`` (1-based), ``lambda`` where the method has one,
        losses (``loss``, ``L_x``, ``L_a``, ...), gradient norms, and the method's own numbers.
    :param seconds: wall time of the steps (setup excluded).
    :param diverged: a watched log value became non-finite; the run stopped at that step.
    :param extra_state: tensors the method wants saved beside the model.
    """

    method: str
    preset: str
    task: str
    steps: int
    seed: int
    params: dict[str, Any]
    model: nn.Module
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False
    extra_state: dict[str, Any] = field(default_factory=dict)

    def column(self, key: str) -> list[float]:
        """The values of one log key over the steps (NaN where a step lacks it).

        :param key: a log key, e.g. ``"lambda"`` or ``"L_x"``.
        """
        return [float(row.get(key, math.nan)) for row in self.log]

    def config(self) -> dict[str, Any]:
        """Plain-value description of the run (for sidecars and ``config.json``)."""
        return {"method": self.method, "preset": self.preset, "task": self.task, "steps": self.steps,
                "steps_done": len(self.log), "seed": self.seed, "params": self.params,
                "seconds": round(self.seconds, 3), "diverged": self.diverged}


def run(
    name: str,
    *,
    preset: str = "tiny",
    task: str = "trousers",
    steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    **params: Any,
) -> RunResult:
    """Unlearn ``task`` from the preset's pretrained DDPM with method ``name``.

    :param name: a registered method (see :func:`~unlearn_gym.methods.available_methods`).
    :param preset: ``micro``, ``tiny`` or any preset with a pretrained DDPM.
    :param task: ``"trousers"`` or ``"erase-<digit>"`` (the method must serve it).
    :param steps: number of updates (default: the preset's ``horizon``).
    :param seed: seed of the run's ``torch.Generator`` (batches, noise, timesteps, draws) and of
        any network a method initialises; the global RNG is neither used nor changed.
    :param progress: show a tqdm progress bar.
    :param callback: called with each step's log row as soon as it is made (e.g. tensorboard).
    :param params: the method's parameters and the setup's (``lr``, ``batch_size``,
        ``max_grad_norm``, ``pairing``, ...); an unknown key raises ``ValueError`` listing them.
    :raises ValueError: unknown method, a task the method does not serve, a bad parameter.
    """
    cls = get_method(name)
    check_task(cls, task)
    setup_kw, own = split_params(cls, params)
    setup_kw = {**cls.setup_defaults_for(get_preset(preset).name, own), **setup_kw}
    check_model(cls, setup_kw.get("model", "ddpm"))
    steps = int(get_preset(preset).horizon if steps is None else steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    setup = build_setup(preset, task, seed=seed, **setup_kw)
    setup.run_steps = steps
    method = cls(setup, **own)
    result = RunResult(method=cls.name, preset=setup.preset.name, task=task, steps=steps, seed=int(seed),
                       params={**method.p, **setup.config}, model=setup.model)
    t0 = time.perf_counter()
    with tqdm(total=steps, disable=not progress, desc=f"{cls.name} on {task}", unit="step") as bar:
        for i in range(steps):
            row = {"step": i + 1, **method.step(i)}
            result.log.append(row)
            if callback is not None:
                callback(row)
            bar.update(1)
            if "lambda" in row:
                bar.set_postfix(lam=f"{row['lambda']:.3f}", loss=f"{row.get('loss', math.nan):.4f}", refresh=False)
            if not all(math.isfinite(row.get(k, 0.0)) for k in WATCHED):
                result.diverged = True
                break
    result.seconds = time.perf_counter() - t0
    result.model = method.output_model().eval()
    result.extra_state = method.extra_state()
    return result
