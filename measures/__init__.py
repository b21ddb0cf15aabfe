"""Importance measures: one file each, registered with ``@register_measure``."""

import inspect

from measures._base import Measure, MeasureContext, Param, prunable_params
from tasks._registry import Registry, import_all

MEASURES: Registry = Registry("measure")
register_measure = MEASURES.register


def _value(text: str):
    """An int or float where the text is one, else the text itself (``kind=true`` stays the string "true")."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``"name:key=value,key=value"`` into the name and its options.

    Raises:
        ValueError: an option is not written as ``key=value``, or a key is given twice.
    """
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Measure options are written name:key=value,... Received: {spec!r}")
        if key.strip() in options:
            raise ValueError(f"Measure option {key.strip()!r} is given twice. Received: {spec!r}")
        options[key.strip()] = _value(value.strip())
    return name.strip(), options


def make_measure(spec: str) -> Measure:
    """Instantiate a measure from a spec such as ``"fisher"`` or ``"obd:hessian=exact"``.

    Raises:
        ValueError: unknown name or option (listing the valid ones), or an invalid option value.
    """
    name, options = parse_spec(spec)
    cls = MEASURES.get(name)
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} of measure {name!r}; available: {list(parameters)}. "
                             f"Received: {spec!r}")
    return cls(**options)


import_all(__name__, __path__)

__all__ = [
    "MEASURES", "Measure", "MeasureContext", "Param", "make_measure", "parse_spec",
    "prunable_params", "register_measure",
]
