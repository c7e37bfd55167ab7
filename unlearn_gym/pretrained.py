"""The models that ship inside the package: pretrained EMA DDPMs and evaluator classifiers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unlearn_gym.checkpoints import CheckpointError, load_checkpoint, read_sidecar
from unlearn_gym.diffusion.ema import ema_weights
from unlearn_gym.diffusion.one_step import OneStepGenerator
from unlearn_gym.diffusion.unet import ConditionalUNet, build_unet
from unlearn_gym.eval.classifier import Classifier, load_classifier_file
from unlearn_gym.presets import PRESETS, get_preset

ASSET_DIR = Path(__file__).parent / "assets"
SHIPPED_PRESETS = ("micro", "tiny")
#: checkpoint kinds that hold DDPM weights: pretraining runs / EMA exports, unlearned models, and
#: ``SISSUnlearnEnv.save`` files (the env's current model)
MODEL_KINDS = ("ddpm", "unlearned", "env-state")
#: contamination ratio (trousers per real "1") of the default shipped DDPMs
DEFAULT_RATIO = 0.1
#: contamination ratios with a shipped DDPM per preset ("heavy" = 0.5: a forget signal well above
#: the noise of the outcome score)
SHIPPED_RATIOS = (0.1, 0.5)


def asset_path(kind: str, preset: str, ratio: float = DEFAULT_RATIO) -> Path:
    """Path of a shipped asset (``kind`` is ``"ddpm"`` or ``"classifier"``).

    :param kind: ``"ddpm"`` or ``"classifier"``.
    :param preset: preset name.
    :param ratio: contamination ratio of the DDPM's training data (one classifier serves all).
    """
    get_preset(preset)
    suffix = "" if kind != "ddpm" or float(ratio) == DEFAULT_RATIO else f"-r{float(ratio):g}"
    return ASSET_DIR / f"{kind}-{preset}{suffix}.pt"


def _shipped(kind: str, preset: str, ratio: float = DEFAULT_RATIO) -> Path:
    path = asset_path(kind, preset, ratio)
    if not path.is_file():
        hint = (
            f"`unlearn-gym pretrain --preset {preset} --ratio {ratio:g}`" if kind == "ddpm"
            else f"`unlearn-gym train-classifier --preset {preset}`"
        )
        shipped = ", ".join(SHIPPED_PRESETS)
        what = f"{kind} (contamination ratio {ratio:g}; shipped ratios {SHIPPED_RATIOS})" if kind == "ddpm" else kind
        raise CheckpointError(
            f"no shipped {what} for preset {preset!r} (shipped presets: {shipped}; known presets:"
            f" {', '.join(PRESETS)}). Train one with {hint} and pass its path."
        )
    return path


def load_ddpm_file(path: str | os.PathLike, preset: str | None = None) -> ConditionalUNet | OneStepGenerator:
    """Load DDPM weights (a pretrained EMA export, a training checkpoint, an unlearned model, or the
    current model of a saved environment).

    Training checkpoints contribute their EMA weights. An unlearned checkpoint of SFD's one-step
    generator (``extra`` holds ``one_step_generator``) comes back as a
    :class:`~unlearn_gym.diffusion.one_step.OneStepGenerator`. The model is returned in eval mode.

    :param path: checkpoint file.
    :param preset: expected preset (``None``: whatever the file says).
    """
    ck = load_checkpoint(path, MODEL_KINDS, preset)
    state = ema_weights(ck["ema"]) if "ema" in ck else ck["model"]
    model: ConditionalUNet | OneStepGenerator = build_unet(ck["preset"])
    one_step = (ck.get("extra") or {}).get("one_step_generator")
    if one_step is not None:
        model = OneStepGenerator(model, t_star=int(one_step["t_star"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the {ck['preset']!r} UNet ({e})") from e
    return model.eval()


def load_pretrained(
    preset: str = "tiny", path: str | os.PathLike | None = None, ratio: float = DEFAULT_RATIO
) -> ConditionalUNet:
    """The pretrained (EMA) DDPM of a preset, from the package or from ``path``.

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    :param ratio: contamination ratio of the shipped model (0.1 default, 0.5 "heavy").
    :raises CheckpointError: unknown/unshipped preset or ratio, missing or corrupt file, preset mismatch,
        or a one-step generator (SFD's output samples in one pass; it is not a DDPM to start from).
    """
    model = load_ddpm_file(path if path is not None else _shipped("ddpm", preset, ratio), preset)
    if isinstance(model, OneStepGenerator):
        raise CheckpointError(
            f"{path} holds SFD's one-step generator, not a DDPM: evaluate or sample it"
            " (`unlearn-gym evaluate`, `unlearn-gym sample`), but start unlearning from a DDPM checkpoint"
        )
    return model


def load_classifier(preset: str = "tiny", path: str | os.PathLike | None = None) -> Classifier:
    """The evaluator classifier of a preset, from the package or from ``path`` (eval mode).

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    """
    return load_classifier_file(path if path is not None else _shipped("classifier", preset), preset)


def asset_info(kind: str, preset: str, ratio: float = DEFAULT_RATIO) -> dict[str, Any]:
    """The sidecar of a shipped asset (command that made it, measured quality)."""
    return read_sidecar(_shipped(kind, preset, ratio))


def ship_assets(
    preset: str,
    ddpm_checkpoint: str | os.PathLike,
    classifier_checkpoint: str | os.PathLike | None,
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
    :param classifier_checkpoint: checkpoint written by ``unlearn-gym train-classifier``; ``None``
        measures with the shipped classifier and installs the DDPM only (a contamination variant).
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
    ratio = float(read_sidecar(ddpm_checkpoint).get("data", {}).get("ratio", DEFAULT_RATIO))
    if classifier_checkpoint is None:
        classifier = load_classifier(preset)
        cmeta = asset_info("classifier", preset)
    else:
        classifier = load_classifier_file(classifier_checkpoint, preset)
        cmeta = read_sidecar(classifier_checkpoint)
    model = load_ddpm_file(ddpm_checkpoint, preset)
    quality = model_quality(model, classifier, n_per_label=n_per_label, steps=steps, seed=seed)
    cmeta.pop("versions", None)
    if classifier_checkpoint is not None:
        cmeta["ship_command"] = command
        save_checkpoint(dest / f"classifier-{preset}.pt", "classifier", preset,
                        {"model": classifier.state_dict()}, cmeta)
    export_ema(ddpm_checkpoint, dest / asset_path("ddpm", preset, ratio).name,
               {"quality": quality, "ship_command": command,
                "classifier_metrics": cmeta.get("metrics")})
    return quality
