"""The resolved settings of one unlearning run: one frozen dataclass, one resolver.

Every unlearning run -- an env episode, a method of :mod:`unlearn_gym.methods`, a benchmark cell --
starts from the same :class:`RunSettings`, built by :func:`resolve_run_settings` from a preset, a
task, a model family and explicit overrides. Every default lives here, once, documented on its
field; layers above pass the object down instead of re-resolving a preset name. The env adds its
MDP settings on top (:class:`unlearn_gym.envs.settings.EnvSettings`).

.. code-block:: python

    s = resolve_run_settings("micro", "erase-7")        # erase_lr / erase_batch / erase_scale
    s.lr, s.batch_size, s.scale                          # (1e-4, 32, 0.5)
    s.with_rule("rescale", 5.0)                          # another rule needs its constant
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

from unlearn_gym.data.contaminated import check_task
from unlearn_gym.device import resolve_device
from unlearn_gym.objectives import MODEL_FAMILIES, check_rule
from unlearn_gym.presets import Preset, get_preset
from unlearn_gym.vae.model import cvae_config
from unlearn_gym.validation import check_env_arguments


@dataclass(frozen=True)
class RunSettings:
    """What one unlearning run is: which model, which data, which optimizer, which update rule.

    Build it with :func:`resolve_run_settings` (it fills the preset-dependent defaults and checks
    every value); :meth:`to_dict` is its plain-value record (sidecars, ``env.config``, checkpoints).

    :param preset: the model/data scale (:class:`~unlearn_gym.presets.Preset`, resolved once).
    :param task: ``"trousers"`` (forget the trousers labelled 1) or ``"erase-<digit>"`` (forget every
        training image of that digit).
    :param model: model family, ``"ddpm"`` or ``"cvae"`` (the class-conditional VAE).
    :param horizon: unlearning steps: an env's episode (or online window), a method's default run
        length. Default: the preset's ``horizon``.
    :param lr: AdamW learning rate. Default: the preset's ``unlearn_lr``; ``erase_lr`` for
        ``erase-<digit>``; the VAE's own ``unlearn_lr`` for ``model="cvae"`` (any task).
    :param batch_size: pairs per step, B. Default: the preset's ``unlearn_batch``; ``erase_batch``
        for ``erase-<digit>``.
    :param rule: SISS update rule (``rescale``, ``ratio``, ``scale``, ``clip``). Default: the preset's
        ``unlearn_rule``.
    :param scale: the rule's constant (ρ, c or s). Default, when ``rule`` is the preset's: the
        preset's ``unlearn_scale``; ``erase_scale`` for ``erase-<digit>``; the VAE's own
        ``unlearn_scale`` for ``model="cvae"``. Another rule has no default: pass its constant.
    :param weight_decay: AdamW weight decay.
    :param max_grad_norm: total-norm clip of each update (``None``: none; ``inf`` is the same).
    :param pairing: ``"drawn"`` or ``"same-label"`` (see :class:`~unlearn_gym.objectives.PairSampler`).
    :param x_from: ``"retain"`` or ``"full"``: where the mixture's x comes from.
    :param checkpoint: weights to start from instead of the shipped pretrained ones.
    :param data_ratio: trousers per real "1" of the dataset build; also selects the shipped model
        pretrained at that contamination (0.1 or 0.5).
    :param data_seed: seed of the dataset build.
    :param max_train_digits: optional cap on training digits of the dataset build.
    :param device: where the model and its data live (resolved: ``"cpu"``, ``"cuda:0"``, ...).
    """

    preset: Preset
    task: str
    model: str
    horizon: int
    lr: float
    batch_size: int
    rule: str
    scale: float
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    pairing: str = "drawn"
    x_from: str = "retain"
    checkpoint: str | None = None
    data_ratio: float = 0.1
    data_seed: int = 0
    max_train_digits: int | None = None
    device: str = "cpu"

    @property
    def erase(self) -> bool:
        """``True`` for an ``erase-<digit>`` task."""
        return self.task.startswith("erase-")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, the preset as its name."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["preset"] = self.preset.name
        return out

    def with_rule(self, rule: str | None, scale: float | None) -> RunSettings:
        """These settings with another update rule (``None``: keep this one) and constant
        (``None``: this rule's default, see :attr:`scale`).

        :param rule: the rule.
        :param scale: its constant.
        :raises ValueError: another rule without its constant, or an invalid constant.
        """
        rule = self.rule if rule is None else rule
        if scale is None:
            if rule != self.rule:
                raise ValueError(f"rule={rule!r} needs its constant: pass scale=... (c for rescale/clip, ρ, s)")
            scale = self.scale
        scale = _check_scale(rule, scale)
        return dataclasses.replace(self, rule=rule, scale=scale)


def default_hyperparameters(preset: Preset, task: str, model: str) -> dict[str, Any]:
    """The task- and family-dependent defaults of ``horizon``, ``lr``, ``batch_size``, ``rule`` and
    ``scale`` (the single place they are decided; see the fields of :class:`RunSettings`).

    :param preset: the preset.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param model: ``"ddpm"`` or ``"cvae"``.
    """
    if model not in MODEL_FAMILIES:
        raise ValueError(f"model must be one of {MODEL_FAMILIES}, got {model!r}")
    erase = task.startswith("erase-")
    out: dict[str, Any] = {
        "horizon": preset.horizon,
        "lr": preset.erase_lr if erase else preset.unlearn_lr,
        "batch_size": preset.erase_batch if erase else preset.unlearn_batch,
        "rule": preset.unlearn_rule,
        "scale": preset.erase_scale if erase else preset.unlearn_scale,  # calibrated: docs/headroom.md
    }
    if model == "cvae":  # the VAE's own (measured: docs/vae.md)
        vae = cvae_config(preset)
        out.update(lr=vae.unlearn_lr, scale=vae.unlearn_scale)
    return out


def _check_scale(rule: str, scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise ValueError(f"scale must be a number, got {scale!r}")
    scale = float(scale)
    check_rule(rule, scale)
    if rule == "erasediff":
        raise ValueError("the erasediff rule belongs to EraseDiff terms (the 'erasediff' method), not to SISS")
    return scale


def resolve_run_settings(
    preset: str | Preset = "tiny",
    task: str = "trousers",
    model: str = "ddpm",
    **overrides: Any,
) -> RunSettings:
    """The one resolver: :class:`RunSettings` from a preset, a task, a model family and overrides.

    An override of ``None`` means "the default" (so callers can pass their own optional arguments
    straight through).

    :param preset: preset name or object.
    :param task: ``"trousers"`` or ``"erase-<digit>"``.
    :param model: ``"ddpm"`` or ``"cvae"``.
    :param overrides: any other field of :class:`RunSettings`.
    :raises ValueError: an unknown field or an invalid value, naming it and what is allowed.
    """
    p = get_preset(preset)
    task = check_task(task)
    names = {f.name for f in dataclasses.fields(RunSettings)} - {"preset", "task", "model"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown run setting(s) {unknown}; known: {sorted(names)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    defaults = default_hyperparameters(p, task, model)
    rule = given.pop("rule", defaults["rule"])
    scale = given.pop("scale", None)
    base = RunSettings(preset=p, task=task, model=model, horizon=defaults["horizon"], lr=defaults["lr"],
                       batch_size=defaults["batch_size"], rule=defaults["rule"], scale=defaults["scale"])
    out = dataclasses.replace(base.with_rule(rule, scale), **given)
    check_env_arguments(horizon=out.horizon, batch_size=out.batch_size, max_train_digits=out.max_train_digits,
                        lr=out.lr, weight_decay=out.weight_decay, max_grad_norm=out.max_grad_norm)
    if not (isinstance(out.data_ratio, numbers.Real) and out.data_ratio > 0):
        raise ValueError(f"data_ratio must be a number > 0 (0.1 and 0.5 ship a model), got {out.data_ratio!r}")
    return dataclasses.replace(
        out, horizon=int(out.horizon), batch_size=int(out.batch_size), lr=float(out.lr),
        weight_decay=float(out.weight_decay),
        max_grad_norm=None if out.max_grad_norm is None else float(out.max_grad_norm),
        data_ratio=float(out.data_ratio), data_seed=int(out.data_seed),
        checkpoint=None if out.checkpoint is None else str(out.checkpoint),
        device=str(resolve_device(given.get("device"))),
    )
