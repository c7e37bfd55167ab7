"""``unlearn-gym ship``: measure a trained model with a classifier and install both as a preset's assets.

Above both :mod:`unlearn_gym.pretrained` (where the assets are looked up and loaded) and
:mod:`unlearn_gym.eval` (which measures them), so neither of those imports the other for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unlearn_gym.checkpoints import read_sidecar, save_checkpoint
from unlearn_gym.classifier import load_classifier_file
from unlearn_gym.device import DeviceLike, resolve_device
from unlearn_gym.diffusion.train import export_ema
from unlearn_gym.eval.quality import model_quality
from unlearn_gym.pretrained import (
    DEFAULT_RATIO,
    GENERATOR_KINDS,
    asset_dirs,
    asset_info,
    asset_path,
    load_classifier,
    load_cvae_file,
    load_ddpm_file,
)


def ship_assets(
    preset: str,
    ddpm_checkpoint: str | os.PathLike,
    classifier_checkpoint: str | os.PathLike | None,
    *,
    n_per_label: int = 100,
    steps: int = 50,
    seed: int = 0,
    dest: str | os.PathLike | None = None,
    command: str | None = None,
    model: str = "ddpm",
    device: DeviceLike = None,
    variant: str = "pretrained",
) -> dict[str, Any]:
    """Measure a trained DDPM (or VAE) with a trained classifier and install both as the preset's assets.

    The model's EMA weights are exported; both sidecars record the commands that made them and
    the measured quality (classifier held-out accuracy; sample quality from
    :func:`unlearn_gym.eval.quality.model_quality`: DDIM samples of a DDPM, prior samples of a VAE).

    :param preset: preset of both checkpoints.
    :param ddpm_checkpoint: checkpoint written by ``unlearn-gym pretrain`` (``--model cvae`` for a VAE).
    :param classifier_checkpoint: checkpoint written by ``unlearn-gym train-classifier``; ``None``
        measures with the shipped classifier and installs the DDPM only (a contamination variant).
    :param n_per_label: samples per label for the quality figures.
    :param steps: DDIM steps.
    :param seed: noise seed.
    :param dest: asset directory (default: ``$UNLEARN_GYM_ASSET_DIR`` if set, else the package's).
    :param command: the command line recorded in the sidecars.
    :param model: ``"ddpm"`` or ``"cvae"``: the family of ``ddpm_checkpoint`` (and the asset's name).
    :param device: where the samples for the quality figures are drawn (default the CPU).
    :param variant: ``"retrained"`` installs a ``--retain-only`` run as ``<model>-<preset>-retrained.pt``
        (refused unless its sidecar says it was trained on the retain set only); a ``--task erase-<d>``
        run becomes ``<model>-<preset>-erase<d>[-r<ratio>]-retrained.pt``.
    :returns: the measured quality.
    """
    dest = Path(dest) if dest is not None else asset_dirs()[0]
    data_meta = read_sidecar(ddpm_checkpoint).get("data", {})
    ratio = float(data_meta.get("ratio", DEFAULT_RATIO))
    if (variant == "retrained") != bool(data_meta.get("retain_only")):
        raise ValueError(f"{ddpm_checkpoint}: variant {variant!r} but retain_only={data_meta.get('retain_only')!r}"
                         " in its sidecar (a retrained reference is a `pretrain --retain-only` run)")
    if classifier_checkpoint is None:
        classifier = load_classifier(preset)
        cmeta = asset_info("classifier", preset)
    else:
        classifier = load_classifier_file(classifier_checkpoint, preset)
        cmeta = read_sidecar(classifier_checkpoint)
    if model not in GENERATOR_KINDS:
        raise ValueError(f"model must be one of {GENERATOR_KINDS}, got {model!r}")
    net = load_cvae_file(ddpm_checkpoint, preset) if model == "cvae" else load_ddpm_file(ddpm_checkpoint, preset)
    quality = model_quality(net.to(resolve_device(device)), classifier, n_per_label=n_per_label, steps=steps, seed=seed)
    cmeta.pop("versions", None)
    if classifier_checkpoint is not None:
        cmeta["ship_command"] = command
        save_checkpoint(dest / f"classifier-{preset}.pt", "classifier", preset,
                        {"model": classifier.state_dict()}, cmeta)
    extra: dict[str, Any] = {"quality": quality, "ship_command": command, "classifier_metrics": cmeta.get("metrics")}
    task = str(data_meta.get("task", "trousers"))
    if variant == "retrained":
        extra.update(variant="retrained", never_saw_forget_set=True, task=task)
    export_ema(ddpm_checkpoint, dest / asset_path(model, preset, ratio, variant, task).name, extra, kind=model)
    return {**quality, "dest": str(dest)}
