"""A name-to-class registry shared by tasks, measures and aggregations, and the spec parser of their options.

Each plugin package (``tasks``, ``measures``, ``aggregations``) owns one
:class:`Registry`. A plugin registers itself with the registry's decorator and
the package ``__init__`` imports every module in its folder with
:func:`import_all`, so a new plugin is one new file. This module imports no
plugin package and no TensorFlow: ``import measures`` does not run the task
modules, and the checks made before TensorFlow is imported
(:mod:`harness.cli.inputs`) parse specs with :func:`parse_spec` too.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered plugin classes.

    Args:
        kind: What the registry holds, singular (``"measure"``); used in errors.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its target under ``name``.

        Raises:
            ValueError: ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered "
                    f"(by {self._entries[name]!r}); names must be unique."
                )
            obj.name = name
            self._entries[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name``; used by tests and notebooks that register toys."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``.

        Raises:
            ValueError: ``name`` is unknown; the message lists the valid names.
        """
        if name not in self._entries:
            raise ValueError(f"Unknown {self.kind} {name!r}; available: {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def check(self, names: Iterable[str]) -> None:
        """Raise the unknown-name error for the first name not registered."""
        for name in names:
            self.get(name)


def import_all(package: str, path: Iterable[str]) -> None:
    """Import every public module of ``package`` so its plugins register."""
    for module in pkgutil.iter_modules(list(path)):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")


def _value(text: str):
    """An int or float where the text is one, a JSON list where it is bracketed, else the text itself.

    ``kind=true`` stays the string "true"; ``groups=[[1,7],[6,8]]`` becomes a list of lists.
    """
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split_options(text: str) -> list[str]:
    """Split at commas outside square brackets: ``"a=[1,2],b=3"`` -> ``["a=[1,2]", "b=3"]``."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return items + [text[start:]]


def parse_spec(spec: str, kind: str = "measure") -> tuple[str, dict]:
    """Split ``"name:key=value,key=value"`` into the name and its options.

    A value in square brackets is a JSON list and may hold commas:
    ``"update_tally:groups=[[1,7],[6,8]],target=0"``.

    Args:
        spec: The plugin's name and options.
        kind: What the plugin is (``"measure"``, ``"aggregation"``), for the errors.

    Raises:
        ValueError: an option is not written as ``key=value``, or a key is given twice.
    """
    name, _, rest = str(spec).partition(":")
    options = {}
    for item in filter(None, map(str.strip, _split_options(rest))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{kind.capitalize()} options are written name:key=value,... Received: {spec!r}")
        if key.strip() in options:
            raise ValueError(f"{kind.capitalize()} option {key.strip()!r} is given twice. Received: {spec!r}")
        options[key.strip()] = _value(value.strip())
    return name.strip(), options
