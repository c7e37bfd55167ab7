"""The method registry: a method is a :class:`Method` subclass decorated with :func:`register_method`.

Adding a method is one file::

    from unlearn_gym.methods import Method, register_method

    @register_method
    class MyMethod(Method):
        name = "my-method"
        tasks = ("trousers",)            # fnmatch patterns of the tasks it serves
        summary = "what it does"
        params = {"alpha": 0.1}          # its own parameters and their defaults

        def step(self, i: int) -> dict[str, float]:
            ...                          # one update of self.setup.model; return what to log

Import the module once (e.g. in your script) and ``unlearn_gym.methods.run("my-method", ...)`` and
``unlearn-gym unlearn --method my-method`` find it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any, ClassVar

from torch import nn

from unlearn_gym.methods.setup import SETUP_PARAMS, UnlearnSetup
from unlearn_gym.overrides import parse_set, parse_value  # noqa: F401  (parse_value: re-exported)


class Method:
    """Base class of an unlearning method: parameters, the tasks it serves, and one ``step``.

    Subclasses set the class attributes and implement :meth:`step`; ``__init__`` receives the run's
    :class:`~unlearn_gym.methods.setup.UnlearnSetup` and the method's own parameters (every key of
    :attr:`params`, defaults filled in) as ``self.p``.

    :param setup: data, model, optimizer and generator of the run.
    :param params: the method's own parameters (keys of :attr:`params`).
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("trousers", "erase-*")
    #: the model families it can unlearn (``"ddpm"``, ``"cvae"``): setup parameter ``model``
    models: ClassVar[tuple[str, ...]] = ("ddpm",)
    summary: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    #: the method's own defaults of setup parameters (e.g. SFD's ``lr`` 1e-5); the caller's win
    setup_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def setup_defaults_for(cls, preset: str, params: dict[str, Any]) -> dict[str, Any]:
        """The method's defaults of setup parameters for one run (default: :attr:`setup_defaults`).

        :param preset: the run's preset name.
        :param params: the method's own parameters as the caller passed them.
        """
        return dict(cls.setup_defaults)

    def __init__(self, setup: UnlearnSetup, **params: Any):
        self.setup = setup
        self.p = {**self.params, **params}

    def step(self, i: int) -> dict[str, float]:
        """One update of ``self.setup.model``; returns the numbers to log (λ, losses, norms).

        :param i: 0-based step index.
        """
        raise NotImplementedError

    def output_model(self) -> nn.Module:
        """The unlearned model (default: the setup's model, updated in place)."""
        return self.setup.model

    def extra_state(self) -> dict[str, Any]:
        """Tensors besides the model worth saving with it (e.g. an inference network)."""
        return {}


_REGISTRY: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` subclass available by its ``name``.

    :param cls: the subclass (needs a non-empty ``name`` and ``tasks``).
    :raises ValueError: missing name or tasks, a name already taken by another class, or a
        parameter that shadows a setup parameter.
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register_method needs a Method subclass, got {cls!r}")
    if not cls.name or not cls.tasks:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` and `tasks` to be registered")
    clash = sorted(set(cls.params) & set(SETUP_PARAMS))
    if clash:
        raise ValueError(f"{cls.__name__}.params {clash} shadow setup parameters; rename them")
    foreign = sorted(set(cls.setup_defaults) - set(SETUP_PARAMS))
    if foreign:
        raise ValueError(f"{cls.__name__}.setup_defaults {foreign} are not setup parameters {sorted(SETUP_PARAMS)}")
    old = _REGISTRY.get(cls.name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {cls.name!r} is taken by {old.__module__}.{old.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Method]:
    """The registered method class called ``name``.

    :param name: a registered method name.
    :raises ValueError: unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}; known methods: {', '.join(available_methods())}"
            " (register your own with @register_method)"
        ) from None


def serves(cls: type[Method], task: str) -> bool:
    """Whether ``cls`` serves ``task`` (its ``tasks`` are fnmatch patterns such as ``erase-*``).

    :param cls: a method class.
    :param task: a task name.
    """
    return any(fnmatch.fnmatchcase(task, pattern) for pattern in cls.tasks)


def check_task(cls: type[Method], task: str) -> None:
    """Raise a clear ``ValueError`` when ``cls`` cannot serve ``task``.

    :param cls: a method class.
    :param task: a task name.
    """
    if not serves(cls, task):
        others = [n for n in available_methods() if serves(_REGISTRY[n], task)]
        raise ValueError(
            f"method {cls.name!r} serves tasks {list(cls.tasks)}, not {task!r};"
            f" methods that serve {task!r}: {', '.join(others) or 'none'}"
        )


def check_model(cls: type[Method], model: str) -> None:
    """Raise a clear ``ValueError`` when ``cls`` cannot unlearn models of family ``model``.

    :param cls: a method class.
    :param model: ``"ddpm"`` or ``"cvae"``.
    """
    if model not in cls.models:
        others = [n for n in available_methods() if model in _REGISTRY[n].models]
        raise ValueError(
            f"method {cls.name!r} works on {list(cls.models)} models, not {model!r};"
            f" methods for {model!r}: {', '.join(others) or 'none'}"
        )


def split_params(cls: type[Method], params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword parameters into setup parameters and the method's own.

    :param cls: the method class.
    :param params: everything the caller passed.
    :raises ValueError: an unknown parameter (the message lists the accepted ones).
    """
    unknown = sorted(set(params) - set(SETUP_PARAMS) - set(cls.params))
    if unknown:
        raise ValueError(
            f"method {cls.name!r} does not take {unknown}; its parameters: {sorted(cls.params)},"
            f" every method's: {sorted(SETUP_PARAMS)}"
        )
    setup = {k: v for k, v in params.items() if k in SETUP_PARAMS}
    own = {k: v for k, v in params.items() if k in cls.params}
    return setup, own


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["lam=0.3", "rule=rescale"]`` -> ``{"lam": 0.3, "rule": "rescale"}`` (dashes in keys become
    underscores; values in the shared grammar of :func:`unlearn_gym.overrides.parse_value`).

    :param items: ``key=value`` strings.
    :raises ValueError: an item without ``=`` or an unreadable value.
    """
    return {key.replace("-", "_"): value for key, value in parse_set(items, example="lam=0.3")}
