"""Per-weight aggregation: every parameter is its own item."""

from aggregations import Aggregation, register_aggregation
from aggregations._items import per_element


@register_aggregation("weight")
class Weight(Aggregation):
    """Every parameter is an item; pooling leaves scores unchanged.

    Item of element ``e`` of any parameter: ``e`` itself (size 1).
    """

    pools = False

    def local_items(self, param):
        """One item per element."""
        return per_element(param)
