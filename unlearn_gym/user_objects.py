"""A user's object named ``MODULE:OBJECT`` (``evaluate-policy`` and ``benchmark --policy``).

``MODULE`` is an importable module or a path to a ``.py`` file; :func:`source_digest` fingerprints
its source, so a benchmark cell of a user policy is recomputed when the file changes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def split_spec(spec: str) -> tuple[str, str]:
    """``(MODULE, OBJECT)`` of a ``MODULE:OBJECT`` spec.

    :param spec: ``"MODULE:OBJECT"``.
    :raises ValueError: a malformed spec, with an example.
    """
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise ValueError(f"expected MODULE:OBJECT (e.g. mypkg.policies:my_policy or path/to/file.py:my_policy),"
                         f" got {spec!r}")
    return module, attr


def source_digest(spec: str) -> str:
    """SHA-256 (16 hex digits) of the source file of ``spec``'s module (``""`` when it has none).

    :param spec: ``"MODULE:OBJECT"``.
    """
    module, _ = split_spec(spec)
    if _is_path(module):
        path = Path(module)
    else:
        found = importlib.util.find_spec(module)
        path = Path(found.origin) if found is not None and found.origin not in (None, "built-in", "frozen") else None
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_object(spec: str) -> Any:
    """The policy named by ``MODULE:OBJECT``.

    ``MODULE`` is an importable module (``mypkg.policies``) or a path to a ``.py`` file
    (``agents/mine.py``); ``OBJECT`` is a name in it (dots reach attributes: ``Holder.policy``).
    What is found is then used as follows: **a class is instantiated with no arguments, a function
    with no required argument is called once (a factory, e.g. one returning ``PPO.load(...)``)**;
    anything else (a policy object, a function ``obs -> action``, an SB3 model) is the policy itself.

    :param spec: ``"MODULE:OBJECT"``.
    :raises ValueError: a malformed spec, a module that cannot be imported, a missing object.
    """
    module, attr = split_spec(spec)
    if _is_path(module):
        path = Path(module)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path} (from {spec!r})")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        mod_name = f"_unlearn_gym_user_{path.stem}_{digest}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = mod  # dataclasses and pickling look the module up
        loader_spec.loader.exec_module(mod)
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"cannot import {module!r} (from {spec!r}): {e}") from e
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module!r} has no {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        return obj()
    params = inspect.signature(obj).parameters.values() if inspect.isfunction(obj) else None
    if params is not None and not any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                                      for p in params):
        return obj()
    return obj
