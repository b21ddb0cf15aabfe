"""Importance measures: one file each, registered with ``@register_measure``."""

import inspect
import json

from measures._base import Measure, MeasureContext, Param, prunable_params
from tasks._registry import Registry, import_all

MEASURES: Registry = Registry("measure")
register_measure = MEASURES.register


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


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``"name:key=value,key=value"`` into the name and its options.

    A value in square brackets is a JSON list and may hold commas:
    ``"update_tally:groups=[[1,7],[6,8]],target=0"``.

    Raises:
        ValueError: an option is not written as ``key=value``, or a key is given twice.
    """
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, _split_options(rest)):
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
