"""A small on-disk cache for deterministic measurements of fixed models (e.g. the outcome score's
reference at θ_0), so that building an env does not re-measure the same pretrained model.

A value is cached under a key made of its ``kind``, the digest of every tensor it depends on
(:func:`tensor_digest`: the weights themselves, not a file name), the settings that produced it,
:data:`CACHE_FORMAT` and the torch version. Any change to one of them is a new key, so a cached value
is exactly what recomputing would give on this machine. Values are JSON (floats, strings, lists and
dicts of them), one file per key, written to a temporary file and renamed.

Where: ``$UNLEARN_GYM_CACHE_DIR``, else ``$UNLEARN_GYM_HOME/measurements`` (default
``~/.cache/unlearn-gym/measurements``, beside the computed baseline rows). ``UNLEARN_GYM_CACHE=0``
turns the disk cache off (values are still kept for the life of the process). A cache that cannot
be written only warns; a corrupt file is recomputed with a warning.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: bump when the meaning of a cached value changes without its inputs changing
CACHE_FORMAT = 1

_MEMO: dict[str, Any] = {}


def cache_dir() -> Path:
    """The cache folder (not created here): ``$UNLEARN_GYM_CACHE_DIR``, else
    ``$UNLEARN_GYM_HOME/measurements`` (default ``~/.cache/unlearn-gym/measurements``)."""
    if os.environ.get("UNLEARN_GYM_CACHE_DIR"):
        return Path(os.environ["UNLEARN_GYM_CACHE_DIR"])
    from unlearn_gym.data.sources import home_dir

    return home_dir() / "measurements"


def disk_cache_enabled() -> bool:
    """False when ``UNLEARN_GYM_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get("UNLEARN_GYM_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def tensor_digest(*modules: nn.Module) -> str:
    """SHA-256 of the parameters and buffers of ``modules`` (names, dtypes, shapes and values).

    :param modules: the models a value depends on.
    """
    h = hashlib.sha256()
    for m in modules:
        for name, t in m.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _key(kind: str, key: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "format": CACHE_FORMAT, "torch": torch.__version__, **key},
                      sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def cached(kind: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()``, or the value stored for ``(kind, key)`` by an earlier call (this process or disk).

    :param kind: what the value is (a file-name-safe word, e.g. ``"outcome-reference"``).
    :param key: everything the value depends on (JSON-able; tensors as :func:`tensor_digest`).
    :param compute: computes the value (JSON-able) when it is not cached.
    """
    name = _key(kind, key)
    if name in _MEMO:
        return copy.deepcopy(_MEMO[name])
    path = cache_dir() / f"{name}.json"
    value: Any = None
    if disk_cache_enabled() and path.exists():
        try:
            value = json.loads(path.read_text())["value"]
        except (OSError, ValueError, KeyError) as err:
            warnings.warn(f"ignoring the unreadable cache file {path} ({err}); recomputing", stacklevel=2)
            value = None
    if value is None:
        value = compute()
        if disk_cache_enabled():
            _write(path, {"kind": kind, "key": key, "value": value})
    _MEMO[name] = value
    return copy.deepcopy(value)


def _write(path: Path, payload: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, default=str)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"could not write the cache file {path} ({err}); set UNLEARN_GYM_CACHE_DIR to a"
                      " writable folder or UNLEARN_GYM_CACHE=0", stacklevel=3)


def clear_memory_cache() -> None:
    """Forget the values kept in this process (the disk cache stays)."""
    _MEMO.clear()
