"""Per-unit aggregation: a unit is an output neuron or output channel."""

from aggregations import Aggregation, register_aggregation
from aggregations._items import per_element, per_output_channel


@register_aggregation("unit")
class Unit(Aggregation):
    """Pool each output unit's incoming weights (and its bias, when prunable).

    Dense kernel ``(in, out)``: unit ``j`` is column ``kernel[:, j]`` plus
    ``bias[j]``. Conv kernel ``(kh, kw, cin, cout)``: unit ``o`` is
    ``kernel[..., o]`` plus ``bias[o]``. Parameters of other layers (batch
    normalization scales, for example) stay per element.

    The original study pooled a unit over its outgoing weights (seed 003's
    warning); pooling over axis 0 of the next layer's kernel is impossible here.
    """

    def local_items(self, param):
        """Dense/conv kernel and bias: item = last-axis index; else per element."""
        if param.kind in ("dense", "conv") and param.role in ("kernel", "bias"):
            return per_output_channel(param)
        return per_element(param)
