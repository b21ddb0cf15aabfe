"""SNIP: connection sensitivity, the size of the loss's first-order response to removing a weight."""

import numpy as np

from measures import Measure, MeasureContext, register_measure
from measures._hessian import mean_loss_gradient


@register_measure("snip")
class Snip(Measure):
    """Connection sensitivity |g * w| of each weight.

        s_k = | dL/dw_k * w_k |,    L = (1/N) sum_n loss(y_n, f(x_n))

    ``g`` is the gradient of the MEAN loss over the whole importance sample
    (one gradient, then the product; not a mean of per-example magnitudes).
    ``dL/dw_k * w_k`` is SNIP's ``dL/dc_k`` at ``c = 1`` for a multiplicative
    mask ``c``. The paper divides by ``sum_k |g_k w_k|``, one positive
    constant per model that changes no ranking; it is omitted.

    Reads ``ctx.x``, ``ctx.y`` and the task's loss (any Keras loss), in
    inference mode. The paper scores at initialisation on one minibatch;
    here the scores are taken after every epoch on the importance sample.

    Returns:
        One float32 array per prunable variable, same shape, >= 0.

    Scaling: g is a MEAN over the N examples, so scores do not grow with N.
    Cost: one forward and one backward pass over the sample, in chunks of
    ``ctx.batch_size``.

    Source: Lee, Ajanthan and Torr 2019, "SNIP: Single-shot Network Pruning
    based on Connection Sensitivity", ICLR (connection sensitivity s_j).
    """

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return |g * w| for each parameter."""
        grads = mean_loss_gradient(ctx)
        return [np.abs(g * v.numpy()).astype(np.float32) for g, v in zip(grads, ctx.variables, strict=True)]
