"""Per-head aggregation: an attention head spans its query, key, value and output-projection slices."""

import keras
import numpy as np

from aggregations import Aggregation, register_aggregation
from aggregations._items import per_element


def head_axis(param) -> int | None:
    """The head axis of a ``MultiHeadAttention`` kernel or bias, or None for any other parameter.

    Query, key and value kernels ``(in, heads, dim)`` and biases ``(heads, dim)``:
    axis -2; output kernel ``(heads, dim, out)``: axis 0; the output bias has none.
    """
    layer = param.layer
    if not isinstance(layer, keras.layers.MultiHeadAttention):
        return None
    for dense in (layer._query_dense, layer._key_dense, layer._value_dense):
        if param.variable is dense.kernel or param.variable is getattr(dense, "bias", None):
            return len(param.shape) - 2
    return 0 if param.variable is layer._output_dense.kernel else None


@register_aggregation("head")
class Head(Aggregation):
    """Pool each attention head of a ``keras.layers.MultiHeadAttention``; everything else per weight.

    Head ``h`` is ``Wq[..., h, :]``, ``bq[h, :]``, ``Wk[..., h, :]``,
    ``bk[h, :]``, ``Wv[..., h, :]``, ``bv[h, :]`` and the output projection's
    rows ``Wo[h, :, :]``: one item spanning seven slices of the layer's
    variables (those prunable), pooled like any item. Removing it (zero
    replacement) zeroes the head's values and output rows, so the head adds
    nothing to the layer's output; its query and key slices go with it. The
    output bias and every other parameter are per element.

    MultiHeadAttention's variables are prunable with ``prunable = "all"``
    (they are not Dense or convolution kernels). The shrunk sweep does not
    apply (``auto`` masks). On a model without attention :meth:`applies_to`
    is False and a run skips it. Not in the default grid: name it
    (``--aggregations weight head``).

    Source: Michel, Levy and Neubig 2019, "Are Sixteen Heads Really Better
    than One?" (head pruning); Torch-Pruning's attention-head groups.
    """

    by_default = False  # a run sweeps it only when named: the default grid (and its run ids) stay as they were

    def applies_to(self, params):
        """True when some prunable parameter is sliced by attention heads."""
        return any(head_axis(p) is not None for p in params)

    def local_items(self, param):
        """An attention slice: item = head (shared by the layer's slices); else per element."""
        axis = head_axis(param)
        if axis is None:
            return per_element(param)
        heads = np.arange(param.shape[axis]).reshape([-1] + [1] * (len(param.shape) - 1 - axis))
        return np.broadcast_to(heads, param.shape).copy(), True
