"""Aggregations: one file each, registered with ``@register_aggregation``."""

from aggregations._items import POOLINGS, Aggregation, Items, pool
from tasks._registry import Registry, import_all

AGGREGATIONS: Registry = Registry("aggregation")
register_aggregation = AGGREGATIONS.register


def get_aggregation(name: str) -> Aggregation:
    """Return a new instance of the aggregation registered as ``name``.

    Raises:
        ValueError: ``name`` is unknown; the message lists the valid names.
    """
    return AGGREGATIONS.get(name)()


import_all(__name__, __path__)

__all__ = ["AGGREGATIONS", "POOLINGS", "Aggregation", "Items", "get_aggregation", "pool", "register_aggregation"]
