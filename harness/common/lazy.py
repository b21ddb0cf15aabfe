"""Public names imported from their modules on first use (PEP 562), for ``harness`` and ``analysis.py``."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(module: str, where: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """A module's ``__getattr__`` and ``__dir__`` that import each public name from its module on first use.

    Args:
        module: The importing module's name, for the error message.
        where: Public name -> dotted name of the module that defines it.
        namespace: The importing module's ``globals()``; a name is kept there once loaded.

    Returns:
        ``(__getattr__, __dir__)``; ``__getattr__`` raises ``AttributeError`` for a name not in ``where``.
    """

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
