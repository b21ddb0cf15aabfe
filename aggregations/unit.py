"""Per-unit aggregation: a unit is an output neuron or output channel, scored in one of three directions."""

from aggregations import Aggregation, register_aggregation
from aggregations._items import per_element, per_output_channel
from aggregations._units import unit_span
from harness.common.options import Option


@register_aggregation("unit")
class Unit(Aggregation):
    """Pool each unit's incoming weights (``in``), outgoing weights (``out``) or whole group (``group``).

    A unit is unit ``j`` of a Dense layer (kernel ``(in, out)``: column
    ``kernel[:, j]``, plus ``bias[j]`` when prunable) or filter ``o`` of a
    convolution (``kernel[..., o]``, plus ``bias[o]``). Removing it masks
    those (its *producing slice*) whatever the direction; with
    ``structured_bn = "zero"`` (the run's option, the default; ``keep``: they
    stay single weights, the behaviour before) it also owns
    and masks the scale ``gamma[j]`` and shift ``beta[j]`` of a
    BatchNormalization that follows it, when they are prunable
    (``prunable = "all"``), so its output after BatchNorm is exactly 0 under
    zero replacement. Its size (for the fraction t) is what it owns.

    ``direction`` only says whose scores are pooled (``pooling``):

    - ``in``: the producing slice (and BatchNorm parameters): today's unit.
    - ``out``: the consuming slice, the rows ``W_next[..., r, :]`` of the next
      Dense or convolution layer along the data path that it feeds
      (``aggregations/_graph.py``): for a Flatten, every position of its
      channel (row ``r`` is fed by channel ``r % channels``). The original
      study's unit (seed 003).
    - ``group``: both (its BatchNorm parameters with ``structured_bn = "zero"``,
      which it then owns), the unit's whole dependency group (Torch-Pruning's group
      importance; Molchanov et al. 2019); removing it also masks its
      consuming slice, which the consumer's units own (so the achieved
      sparsity exceeds t; the ``sparsity`` column records it).

    Where the next layer is not found (the model's output layer, a layer
    feeding several (a residual Add), another layer before the next kernel,
    or a consumer kernel that is not prunable), ``out`` falls back to ``in``
    and ``group`` pools and masks no consuming slice, with a note in the
    run's JSON. Parameters of other layers stay per element.

    Args:
        direction: ``in`` (default), ``out`` or ``group``; ``unit:direction=out``.

    Raises:
        ValueError: unknown direction, naming the choices.

    Source: seed 003 (outgoing pooling); Molchanov et al. 2019, "Importance
    Estimation for Neural Network Pruning" (group scores); Fang et al. 2023,
    "DepGraph" (Torch-Pruning's dependency groups).
    """

    structured_bn = "zero"  # the run's option, set by make_aggregation

    options = {"direction": Option(default="in", choices=("in", "out", "group"),
                                   doc="pool incoming (in), outgoing (out) or all (group) weights of a unit")}

    def key(self):
        """The direction and structured_bn."""
        return self.direction, self.structured_bn

    def local_items(self, param):
        """Dense/conv kernel and bias: item = last-axis index; else per element."""
        if param.kind in ("dense", "conv") and param.role in ("kernel", "bias"):
            return per_output_channel(param)
        return per_element(param)

    def span(self, params):
        """The units in :attr:`direction` (``aggregations/_units.py``)."""
        return unit_span(self, params, self.direction, self.structured_bn)

