"""Atomic checkpoint files with JSON sidecars, and loading with clear errors."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

FORMAT = "unlearn-gym"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or of the wrong kind or preset."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar next to a checkpoint (``model.pt`` -> ``model.json``)."""
    return Path(path).with_suffix(".json")


def versions() -> dict[str, str]:
    """Versions of the packages that shape a checkpoint."""
    from unlearn_gym import __version__

    return {"unlearn_gym": __version__, "torch": torch.__version__, "python": platform.python_version()}


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def save_checkpoint(
    path: str | os.PathLike, kind: str, preset: str, payload: dict[str, Any],
    sidecar: dict[str, Any] | None = None,
) -> Path:
    """Save ``payload`` atomically with a header and a JSON sidecar.

    :param path: destination ``.pt`` file.
    :param kind: what it holds (``"ddpm"``, ``"classifier"``, ``"unlearned"``, ...).
    :param preset: the preset the weights belong to.
    :param payload: tensors and plain values.
    :param sidecar: extra metadata for the sidecar (the header and package versions are added).
    """
    path = Path(path)
    full = {"format": FORMAT, "kind": kind, "preset": preset, **payload}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.save(full, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    meta = {"format": FORMAT, "kind": kind, "preset": preset, "versions": versions(), **(sidecar or {})}
    write_json(sidecar_path(path), meta)
    return path


def load_checkpoint(
    path: str | os.PathLike, kind: str | tuple[str, ...] | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    :param path: the ``.pt`` file.
    :param kind: expected kind(s); ``None`` accepts any.
    :param preset: expected preset; ``None`` accepts any.
    :raises CheckpointError: missing, unreadable, truncated, foreign or mismatched file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, BadZipFile, ...
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}); "
            "re-create it (e.g. `unlearn-gym pretrain`) or restore it from the package"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an unlearn-gym checkpoint")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and obj.get("kind") not in kinds:
        raise CheckpointError(f"{path} holds a {obj.get('kind')!r} checkpoint, expected {kinds}")
    if preset is not None and obj.get("preset") != preset:
        raise CheckpointError(
            f"{path} was made for preset {obj.get('preset')!r}, not {preset!r}; "
            "pass the matching --preset"
        )
    return obj


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar metadata of a checkpoint (empty dict if it has none)."""
    p = sidecar_path(path)
    return json.loads(p.read_text()) if p.is_file() else {}
