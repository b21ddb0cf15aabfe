"""Per-filter aggregation: conv filters are items, everything else per weight."""

from aggregations import Aggregation, register_aggregation
from aggregations._items import per_element, per_output_channel
from aggregations._units import unit_span
from harness.common.options import Option


@register_aggregation("filter")
class Filter(Aggregation):
    """Pool each convolution filter; Dense layers stay per weight.

    Conv kernel ``(kh, kw, cin, cout)``: filter ``o`` is ``kernel[..., o]``,
    every tap and input channel of one output channel, plus ``bias[o]`` when
    biases are prunable, since the bias belongs to the filter's feature map.
    Never pooled across output channels (the original study's bug, seed 003).
    Dense kernels, Dense biases and other parameters are per element.

    ``direction`` (``in``, ``out``, ``group``) and ``structured_bn`` as for
    ``unit`` (see ``aggregations/unit.py``): ``out`` pools the next layer's
    kernel rows fed by the filter, every position of its channel after a
    Flatten. On a model without conv layers every item is a single weight, as in
    ``weight``; :meth:`applies_to` is then False and a run skips it.

    Args:
        direction: ``in`` (default), ``out`` or ``group``; ``filter:direction=out``.

    Raises:
        ValueError: unknown direction, naming the choices.

    Source: Li et al. 2017, "Pruning Filters for Efficient ConvNets".
    """

    structured_bn = "zero"  # the run's option, set by make_aggregation

    options = {"direction": Option(default="in", choices=("in", "out", "group"),
                                   doc="pool incoming (in), outgoing (out) or all (group) weights of a unit")}

    def key(self):
        """The direction and structured_bn."""
        return self.direction, self.structured_bn

    def applies_to(self, params):
        """True when some prunable parameter belongs to a conv layer."""
        return any(p.kind == "conv" for p in params)

    def local_items(self, param):
        """Conv kernel and bias: item = output channel; else per element."""
        if param.kind == "conv" and param.role in ("kernel", "bias"):
            return per_output_channel(param)
        return per_element(param)

    def span(self, params):
        """The filters in :attr:`direction` (``aggregations/_units.py``)."""
        return unit_span(self, params, self.direction, self.structured_bn)
