"""The models that ship inside the package: pretrained EMA DDPMs and VAEs, evaluator classifiers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from unlearn_gym.checkpoints import CheckpointError, load_checkpoint, read_sidecar
from unlearn_gym.classifier import Classifier, load_classifier_file
from unlearn_gym.data.contaminated import check_task
from unlearn_gym.device import DeviceLike, resolve_device
from unlearn_gym.diffusion.ema import ema_weights
from unlearn_gym.diffusion.one_step import OneStepGenerator
from unlearn_gym.diffusion.unet import ConditionalUNet, build_unet
from unlearn_gym.presets import PRESETS, get_preset
from unlearn_gym.rng import seeded_global_rng
from unlearn_gym.vae.model import ConditionalVAE, build_cvae

ASSET_DIR = Path(__file__).parent / "assets"
#: environment variable naming a folder of your own assets (e.g. an ``mnist28`` model pretrained on a
#: GPU): searched before the package's folder, and where ``unlearn-gym ship`` installs when it is set
ASSET_DIR_ENV = "UNLEARN_GYM_ASSET_DIR"
SHIPPED_PRESETS = ("micro", "tiny")
#: checkpoint kinds that hold DDPM weights: pretraining runs / EMA exports, unlearned models, and
#: ``SISSUnlearnEnv.save`` files (the env's current model)
MODEL_KINDS = ("ddpm", "unlearned", "env-state")
#: kinds of shipped generative models (``model=`` of :func:`load_pretrained`, the env's ``model``)
GENERATOR_KINDS = ("ddpm", "cvae")
#: contamination ratio (trousers per real "1") of the default shipped DDPMs
DEFAULT_RATIO = 0.1
#: contamination ratios with a shipped DDPM per preset ("heavy" = 0.5: a forget signal well above
#: the noise of the outcome score)
SHIPPED_RATIOS = (0.1, 0.5)
#: ``variant=`` of :func:`load_pretrained`: the model pretrained on the contaminated mix, or the same
#: recipe and seed retrained on the retain set only (exact unlearning's reference; the retain set
#: does not depend on the contamination ratio, so one retrained model serves every ratio)
VARIANTS = ("pretrained", "retrained")


def asset_dirs() -> list[Path]:
    """Where assets are looked up, in order: ``$UNLEARN_GYM_ASSET_DIR`` (if set), then the package's."""
    user = os.environ.get(ASSET_DIR_ENV, "").strip()
    return ([Path(user).expanduser()] if user else []) + [ASSET_DIR]


def asset_path(
    kind: str, preset: str, ratio: float = DEFAULT_RATIO, variant: str = "pretrained", task: str = "trousers"
) -> Path:
    """Path of an asset (``kind`` is ``"ddpm"``, ``"cvae"`` or ``"classifier"``): the first folder of
    :func:`asset_dirs` that holds it (the package's path when none does).

    :param kind: ``"ddpm"``, ``"cvae"`` or ``"classifier"``.
    :param preset: preset name.
    :param ratio: contamination ratio of the generative model's training data (one classifier
        serves all).
    :param variant: ``"pretrained"`` or ``"retrained"`` (generative models only; one retrained
        model per preset and family, whatever the ratio: ``<kind>-<preset>-retrained.pt``).
    :param task: the task a retrained model never saw the forget set of: ``"trousers"``, or
        ``"erase-<d>"`` (retrained without digit ``d``, trousers kept: one per ratio,
        ``<kind>-<preset>-erase<d>[-r<ratio>]-retrained.pt``). Pretrained models serve every task.
    """
    get_preset(preset)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    suffix = "" if kind not in GENERATOR_KINDS or float(ratio) == DEFAULT_RATIO else f"-r{float(ratio):g}"
    if variant == "retrained" and kind in GENERATOR_KINDS:
        suffix = "-retrained" if check_task(task) == "trousers" else f"-{task.replace('-', '')}{suffix}-retrained"
    name = f"{kind}-{preset}{suffix}.pt"
    for folder in asset_dirs():
        if (folder / name).is_file():
            return folder / name
    return ASSET_DIR / name


def _shipped(
    kind: str, preset: str, ratio: float = DEFAULT_RATIO, variant: str = "pretrained", task: str = "trousers"
) -> Path:
    path = asset_path(kind, preset, ratio, variant, task)
    if variant == "retrained" and not path.is_file():
        task_flags = "" if task == "trousers" else f" --task {task} --ratio {ratio:g}"
        raise CheckpointError(
            f"no retrained {kind} for preset {preset!r} and task {task!r}; train one with `unlearn-gym pretrain"
            f"{' --model cvae' if kind == 'cvae' else ''} --preset {preset} --retain-only{task_flags}` and pass"
            " its path (docs/forgetting.md)"
        )
    if not path.is_file():
        model_flag = " --model cvae" if kind == "cvae" else ""
        hint = (
            f"`unlearn-gym pretrain{model_flag} --preset {preset} --ratio {ratio:g}`" if kind in GENERATOR_KINDS
            else f"`unlearn-gym train-classifier --preset {preset}`"
        )
        shipped = ", ".join(SHIPPED_PRESETS)
        ratios = ", ".join(f"{r:g}" for r in SHIPPED_RATIOS if asset_path(kind, preset, r).is_file()) or "none"
        what = (f"{kind} (contamination ratio {ratio:g}; shipped ratios for {preset}: {ratios})"
                if kind in GENERATOR_KINDS else kind)
        raise CheckpointError(
            f"no shipped {what} for preset {preset!r} (shipped presets: {shipped}; known presets:"
            f" {', '.join(PRESETS)}). Train one with {hint} and pass its path, or install it with"
            f" `unlearn-gym ship` into a folder named by ${ASSET_DIR_ENV} (searched: "
            f"{', '.join(str(d) for d in asset_dirs())})."
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
    ck = load_checkpoint(path, ("cvae", *MODEL_KINDS), preset)
    if checkpoint_family(ck) != "ddpm":
        raise CheckpointError(f"{path} holds VAE weights, not a DDPM; load it with load_pretrained(..., model='cvae')")
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


def checkpoint_family(ck: dict[str, Any]) -> str:
    """``"ddpm"`` or ``"cvae"``: the model family whose weights a loaded checkpoint holds.

    ``cvae`` checkpoints say so by their kind; unlearned models by ``model_family`` and saved
    environments by ``config["model"]`` (files from before the VAE hold DDPMs).

    :param ck: the dictionary :func:`~unlearn_gym.checkpoints.load_checkpoint` returned.
    """
    if ck.get("kind") in GENERATOR_KINDS:
        return str(ck["kind"])
    return str(ck.get("model_family") or (ck.get("config") or {}).get("model") or "ddpm")


def model_family(model: nn.Module) -> str:
    """``"cvae"`` for a :class:`~unlearn_gym.vae.model.ConditionalVAE`, else ``"ddpm"``.

    :param model: a loaded generative model.
    """
    return "cvae" if isinstance(model, ConditionalVAE) else "ddpm"


def load_cvae_file(path: str | os.PathLike, preset: str | None = None) -> ConditionalVAE:
    """Load VAE weights (a pretraining run or EMA export, an unlearned VAE, a saved VAE env), eval mode.

    :param path: checkpoint file.
    :param preset: expected preset (``None``: whatever the file says).
    :raises CheckpointError: missing, corrupt, foreign or other-preset file, or DDPM weights.
    """
    ck = load_checkpoint(path, ("cvae", *MODEL_KINDS), preset)
    if checkpoint_family(ck) != "cvae":
        raise CheckpointError(f"{path} holds DDPM weights, not a VAE; load it with load_pretrained(..., path=...)"
                              " or pass model='ddpm'")
    state = ema_weights(ck["ema"]) if "ema" in ck else ck["model"]
    model = build_cvae(ck["preset"])
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the {ck['preset']!r} VAE ({e})") from e
    return model.eval()


def load_model_file(path: str | os.PathLike, preset: str | None = None) -> nn.Module:
    """Load whatever generative model a checkpoint holds: a DDPM (or SFD's one-step generator) or a VAE.

    :param path: checkpoint file.
    :param preset: expected preset (``None``: whatever the file says).
    """
    ck = load_checkpoint(path, ("cvae", *MODEL_KINDS), preset)
    return load_cvae_file(path, preset) if checkpoint_family(ck) == "cvae" else load_ddpm_file(path, preset)


def load_pretrained(
    preset: str = "tiny", path: str | os.PathLike | None = None, ratio: float = DEFAULT_RATIO,
    *, model: str = "ddpm", device: DeviceLike = None, variant: str = "pretrained", task: str = "trousers",
) -> nn.Module:
    """The pretrained (EMA) DDPM or VAE of a preset, from the package or from ``path``.

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    :param ratio: contamination ratio of the shipped model (0.1 default, 0.5 "heavy").
    :param model: ``"ddpm"`` (:class:`~unlearn_gym.diffusion.unet.ConditionalUNet`) or ``"cvae"``
        (:class:`~unlearn_gym.vae.model.ConditionalVAE`).
    :param device: where the model is put (``"cpu"``, ``"cuda"``, ``"auto"``; default the CPU).
    :param variant: ``"pretrained"`` (trained on the contaminated mix) or ``"retrained"`` (same recipe
        and seed on the retain set only: the reference of exact unlearning, docs/forgetting.md; one
        per preset and family, the same for every ``ratio``).
    :param task: with ``variant="retrained"``: ``"erase-<d>"`` loads the model retrained without digit
        ``d`` (at this ``ratio``), the reference of the class-erasure task.
    :raises CheckpointError: unknown/unshipped preset or ratio, missing or corrupt file, preset mismatch,
        a checkpoint of the other family, or a one-step generator (SFD's output samples in one
        pass; it is not a DDPM to start from).
    """
    if model not in GENERATOR_KINDS:
        raise ValueError(f"model must be one of {GENERATOR_KINDS}, got {model!r}")
    dev = resolve_device(device)
    with seeded_global_rng(0):  # a network's throw-away init draws from the global RNG: leave the caller's alone
        if model == "cvae":
            return load_cvae_file(path if path is not None else _shipped("cvae", preset, ratio, variant, task),
                                  preset).to(dev)
        ddpm = load_ddpm_file(path if path is not None else _shipped("ddpm", preset, ratio, variant, task), preset)
    if isinstance(ddpm, OneStepGenerator):
        raise CheckpointError(
            f"{path} holds SFD's one-step generator, not a DDPM: evaluate or sample it"
            " (`unlearn-gym evaluate`, `unlearn-gym sample`), but start unlearning from a DDPM checkpoint"
        )
    return ddpm.to(dev)


def load_classifier(preset: str = "tiny", path: str | os.PathLike | None = None) -> Classifier:
    """The evaluator classifier of a preset, from the package or from ``path`` (eval mode).

    :param preset: ``micro`` or ``tiny`` ship with the package.
    :param path: optional checkpoint to load instead of the shipped one.
    """
    with seeded_global_rng(0):  # as load_pretrained: the init is overwritten, the caller's RNG untouched
        return load_classifier_file(path if path is not None else _shipped("classifier", preset), preset)


def asset_info(
    kind: str, preset: str, ratio: float = DEFAULT_RATIO, variant: str = "pretrained", task: str = "trousers"
) -> dict[str, Any]:
    """The sidecar of a shipped asset (command that made it, measured quality); arguments as :func:`asset_path`."""
    return read_sidecar(_shipped(kind, preset, ratio, variant, task))
