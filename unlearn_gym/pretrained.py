"""The models that ship inside the package: pretrained EMA DDPMs and evaluator classifiers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unlearn_gym.checkpoints import CheckpointError, load_checkpoint, read_sidecar
from unlearn_gym.diffusion.ema import ema_weights
from unlearn_gym.diffusion.unet import ConditionalUNet, build_unet
from unlearn_gym.eval.classifier import Classifier, load_classifier_file
from unlearn_gym.presets import PRESETS, get_preset

ASSET_DIR = Path(__file__).parent / "assets"
SHIPPED_PRESETS = ("micro", "tiny")
#: checkpoint kinds that hold DDPM weights: pretraining runs / EMA exports, unlearned models, and
#: ``SISSUnlearnEnv.save`` files (the env's current model)
MODEL_KINDS = ("ddpm", "unlearned", "env-state")


def asset_path(kind: str, preset: str) -> Path:
    """Path of a shipped asset (``kind`` is ``"ddpm"`` or ``"classifier"``)."""
    get_preset(preset)
    return ASSET_DIR / f"{kind}-{preset}.pt"


def _shipped(kind: str, preset: str) -> Path:
    path = asset_path(kind, preset)
    if not path.is_file():
        hint = (
            f"`unlearn-gym pretrain --preset {preset}`" if kind == "ddpm"
            else f"`unlearn-gym train-classifier --preset {preset}`"
        )
        shipped = ", ".join(SHIPPED_PRESETS)
        raise CheckpointError(
            f"no shipped {kind} for preset {preset!r} (shipped: {shipped}; known presets:"
            f" {', '.join(PRESETS)}). Train one with {hint} and pass its path."
        )
    return path


def load_ddpm_file(path: str | os.PathLike, preset: str | None = None) -> ConditionalUNet:
    """Load DDPM weights (a pretrained EMA export, a training checkpoint, an unlearned model, or the
    current model of a saved environment).

    Training checkpoints contribute their EMA weights. The model is returned in eval mode.

    :param path: checkpoint file.
    :param preset: expected preset (``None``: whatever the file says).
    """
    ck = load_checkpoint(path, MODEL_KINDS, preset)
    state = ema_weights(ck["ema"]) if "ema" in ck else ck["model"]
    model = build_unet(ck["preset"])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the {ck['preset']!r} UNet ({e})") from e
    return model.eval()


def load_pretrained(preset: str = "tiny", path: str | os.PathLike | None = None) -> ConditionalUNet:
    """The pretrained (EMA) DDPM of a preset, from the package or from ``path``.

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    :raises CheckpointError: unknown/unshipped preset, missing or corrupt file, preset mismatch.
    """
    return load_ddpm_file(path if path is not None else _shipped("ddpm", preset), preset)


def load_classifier(preset: str = "tiny", path: str | os.PathLike | None = None) -> Classifier:
    """The evaluator classifier of a preset, from the package or from ``path`` (eval mode).

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    """
    return load_classifier_file(path if path is not None else _shipped("classifier", preset), preset)


def asset_info(kind: str, preset: str) -> dict[str, Any]:
    """The sidecar of a shipped asset (command that made it, measured quality)."""
    return read_sidecar(_shipped(kind, preset))


def ship_assets(
    preset: str,
    ddpm_checkpoint: str | os.PathLike,
    classifier_checkpoint: str | os.PathLike,
    *,
    n_per_label: int = 100,
    steps: int = 50,
    seed: int = 0,
    dest: str | os.PathLike = ASSET_DIR,
    command: str | None = None,
) -> dict[str, Any]:
    """Measure a trained DDPM with a trained classifier and install both as the preset's assets.

    The DDPM's EMA weights are exported; both sidecars record the commands that made them and
    the measured quality (classifier held-out accuracy; sample quality from
    :func:`unlearn_gym.eval.quality.model_quality`).

    :param preset: preset of both checkpoints.
    :param ddpm_checkpoint: checkpoint written by ``unlearn-gym pretrain``.
    :param classifier_checkpoint: checkpoint written by ``unlearn-gym train-classifier``.
    :param n_per_label: samples per label for the quality figures.
    :param steps: DDIM steps.
    :param seed: noise seed.
    :param dest: asset directory (default: the package's).
    :param command: the command line recorded in the sidecars.
    :returns: the measured quality.
    """
    from unlearn_gym.checkpoints import save_checkpoint
    from unlearn_gym.diffusion.train import export_ema
    from unlearn_gym.eval.quality import model_quality

    dest = Path(dest)
    classifier = load_classifier_file(classifier_checkpoint, preset)
    model = load_ddpm_file(ddpm_checkpoint, preset)
    quality = model_quality(model, classifier, n_per_label=n_per_label, steps=steps, seed=seed)
    cmeta = read_sidecar(classifier_checkpoint)
    cmeta.pop("versions", None)
    cmeta["ship_command"] = command
    save_checkpoint(dest / f"classifier-{preset}.pt", "classifier", preset,
                    {"model": classifier.state_dict()}, cmeta)
    export_ema(ddpm_checkpoint, dest / f"ddpm-{preset}.pt",
               {"quality": quality, "ship_command": command,
                "classifier_metrics": cmeta.get("metrics")})
    return quality
