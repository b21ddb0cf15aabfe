"""Importance measures: one file each, registered with ``@register_measure``."""

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
        ValueError: an option is not written as ``key=value``.
    """
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Measure options are written name:key=value,... Received: {spec!r}")
        options[key.strip()] = _value(value.strip())
    return name.strip(), options


def make_measure(spec: str) -> Measure:
    """Instantiate a measure from a spec such as ``"fisher"`` or ``"obd:hessian=exact"``.

    Raises:
        ValueError: unknown name (listing the valid ones) or invalid options.
    """
    name, options = parse_spec(spec)
    return MEASURES.get(name)(**options)


import_all(__name__, __path__)

__all__ = [
    "MEASURES", "Measure", "MeasureContext", "Param", "make_measure", "parse_spec",
    "prunable_params", "register_measure",
]
