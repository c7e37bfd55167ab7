"""The one grammar of ``--set key=value`` values, for the methods (``unlearn-gym unlearn --set``) and
the agents (``train-agent --set``, ``agents/rllib_train.py --env-kwargs``).

A value is read, in this order, as

* nothing (``key=``): ``None``;
* ``true`` / ``false`` (any case): a bool; ``none`` / ``null`` / ``~`` (any case): ``None``;
* a Python literal (:func:`ast.literal_eval`): ``0.3``, ``3e-4``, ``16``, ``'text'``, ``[64, 64]``,
  ``(1, 2)``, ``{"pi": [32]}``;
* a flow collection with bare words, as YAML writes it inline: ``[a, b]``, ``{pi: [32], vf: [32]}``,
  ``{n_forget: 32, norm_obs: true}`` (every item is read by these same rules);
* anything else: the text itself, as a string (``rescale``, ``lin_3e-4``, ``cuda``).

It is a superset of Python literals and the subset of YAML's flow syntax that a command line uses,
with no dependency (pyyaml is only in the ``sb3`` extra). It differs from YAML in that ``none`` is
``None`` and ``yes`` / ``no`` / ``on`` / ``off`` stay strings. Hyperparameter *files* are still YAML
(:mod:`unlearn_gym.rl.config`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

_TRUE, _FALSE, _NONE = ("true",), ("false",), ("none", "null", "~")
_OPEN = {"[": "]", "{": "}"}
_QUOTES = ("'", '"')


def _scalar(text: str) -> Any:
    """One scalar: bool / ``None`` words, a Python literal, else the text."""
    word = text.strip()
    low = word.lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    if low in _NONE or not word:
        return None
    try:
        return ast.literal_eval(word)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return word


class _Flow:
    """Recursive-descent reader of one flow collection (``[...]`` or ``{...}``) with bare words."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"cannot read {self.text!r}: {what} at character {self.pos}")

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self, stops: str) -> Any:
        c = self.peek()
        if c in _OPEN:
            return self.collection()
        if c in _QUOTES:
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            if self.text[self.pos] in "[]{}":
                raise self.error(f"unexpected {self.text[self.pos]!r}")
            self.pos += 1
        return _scalar(self.text[start : self.pos])

    def quoted(self) -> str:
        quote, start = self.text[self.pos], self.pos
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        if self.pos >= len(self.text):
            raise self.error("unterminated string")
        self.pos += 1
        return ast.literal_eval(self.text[start : self.pos])

    def collection(self) -> list[Any] | dict[Any, Any]:
        opening = self.text[self.pos]
        closing = _OPEN[opening]
        self.pos += 1
        out: list[Any] | dict[Any, Any] = [] if opening == "[" else {}
        if self.peek() == closing:
            self.pos += 1
            return out
        while True:
            if isinstance(out, list):
                out.append(self.value(",]"))
            else:
                key = self.value(":,}")
                if self.peek() != ":":
                    raise self.error("expected ':' after a mapping key")
                self.pos += 1
                try:
                    out[key] = self.value(",}")
                except TypeError as e:  # an unhashable key
                    raise self.error(f"bad mapping key {key!r}") from e
            c = self.peek()
            self.pos += 1
            if c == closing:
                return out
            if c != ",":
                raise self.error(f"expected ',' or {closing!r}")

    def read(self) -> Any:
        value = self.collection()
        if self.peek():
            raise self.error("unexpected text after the closing bracket")
        return value


def parse_value(text: str) -> Any:
    """A command-line value as Python (the grammar of the module docstring).

    :param text: the text after ``=`` in ``--set key=value``.
    :raises ValueError: a flow collection (``[...]`` / ``{...}``) that is neither a Python literal
        nor well formed.
    """
    word = text.strip()
    value = _scalar(word)
    if isinstance(value, str) and word[:1] in _OPEN:
        return _Flow(word).read()
    return value


def parse_set(items: Iterable[str], example: str = "lam=0.3") -> list[tuple[str, Any]]:
    """``["gamma=0.95", "env_kwargs.beta=0.2"]`` -> ``[("gamma", 0.95), ("env_kwargs.beta", 0.2)]``.

    Keys are stripped and otherwise kept (dots and dashes included); values go through
    :func:`parse_value`. Later items repeat earlier keys as they come (the caller decides).

    :param items: ``key=value`` strings.
    :param example: a valid item for the error message.
    :raises ValueError: an item without ``=`` or without a key, or an unreadable value.
    """
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r} (e.g. --set {example})")
        try:
            out.append((key, parse_value(raw)))
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from e
    return out
