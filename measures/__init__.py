"""Importance measures: one file each, registered with ``@register_measure``."""

from harness.common.options import Option, check_options
from harness.common.registry import Registry, import_all, parse_spec
from measures._base import Measure, MeasureContext, Param, prunable_params

MEASURES: Registry = Registry("measure")
register_measure = MEASURES.register


def make_measure(spec: str) -> Measure:
    """Instantiate a measure from a spec such as ``"fisher"`` or ``"obd:hessian=exact"``.

    The options are checked against the class's declared ``options``
    (:func:`harness.common.options.check_options`), the same check the catalogue's
    reading of the declaration makes before TensorFlow is imported.

    Raises:
        ValueError: unknown name or option (listing the valid ones), or an invalid option value.
    """
    name, options = parse_spec(spec)
    cls = MEASURES.get(name)
    check_options("measure", name, cls.options, options, received=spec)
    return cls(**options)


import_all(__name__, __path__)

__all__ = [
    "MEASURES", "Measure", "MeasureContext", "Option", "Param", "make_measure", "parse_spec",
    "prunable_params", "register_measure",
]
