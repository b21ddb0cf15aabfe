"""Aggregations: one file each, registered with ``@register_aggregation``."""

from aggregations._items import POOLINGS, Aggregation, Items, pool
from aggregations._units import STRUCTURED_BN
from harness.common.options import check_options
from harness.common.registry import Registry, import_all, parse_spec

AGGREGATIONS: Registry = Registry("aggregation")
register_aggregation = AGGREGATIONS.register


def get_aggregation(spec: str, structured_bn: str = "zero") -> Aggregation:
    """Return a new instance of the aggregation ``spec``: a name, or ``name:key=value,...`` (``unit:direction=out``).

    Args:
        spec: The name and options; its :attr:`Aggregation.spec` is the
            canonical form (options at their default left out).
        structured_bn: ``zero`` or ``keep``: whether units own their
            BatchNorm scale and shift (``aggregations/unit.py``).

    Raises:
        ValueError: unknown name, option or option value (listing the valid
            ones), an option of an aggregation that takes none, or a bad ``structured_bn``.
    """
    if structured_bn not in STRUCTURED_BN:
        raise ValueError(f"Unknown structured_bn {structured_bn!r}; available: {list(STRUCTURED_BN)}. "
                         f"Received: structured_bn={structured_bn!r}")
    name, options = parse_spec(spec, "aggregation")
    cls = AGGREGATIONS.get(name)
    check_options("aggregation", name, cls.options, options, received=spec)
    aggregation = cls(**options)
    aggregation.structured_bn = structured_bn
    return aggregation


import_all(__name__, __path__)

__all__ = ["AGGREGATIONS", "POOLINGS", "Aggregation", "Items", "get_aggregation", "pool", "register_aggregation"]
