"""A name-to-class registry shared by tasks, measures and aggregations.

Each plugin package (``tasks``, ``measures``, ``aggregations``) owns one
:class:`Registry`. A plugin registers itself with the registry's decorator and
the package ``__init__`` imports every module in its folder with
:func:`import_all`, so a new plugin is one new file. The class lives here
because tasks sit at the top of the data flow: every other package may import
from ``tasks`` without reaching upstream.
"""

from __future__ import annotations

import importlib
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
