"""Memory Aware Synapses: how strongly each parameter moves the size of the output."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, register_measure
from measures._per_example import per_example_mean


def squared_output_norm(loss, outputs: tf.Tensor) -> tf.Tensor:
    """``||f(x)||_2^2`` per example, shape ``(B, 1)``; the loss is not read."""
    return tf.reduce_sum(tf.square(outputs), axis=-1, keepdims=True)


@register_measure("mas")
class MemoryAwareSynapses(Measure):
    """Mean absolute per-example gradient of the squared L2 norm of the output.

        Omega_k = (1/N) sum_n | d ||f(x_n)||_2^2 / d theta_k |

    ``f`` is the model's output as returned: the logits for models trained
    with ``from_logits=True`` (all built-in tasks), the probabilities for a
    model ending in softmax. Aljundi et al. use the squared L2 norm of the
    learned function's output; no labels are needed.

    Reads ``ctx.x`` only (``ctx.y`` and ``ctx.loss`` are not read).

    Returns:
        One float32 array per prunable variable, same shape, >= 0.

    Scaling: a MEAN over the N examples; the absolute value is taken per
    example before averaging, so it is not |gradient of the mean|. Cost: one
    forward and one backward pass per chunk of ``ctx.batch_size`` examples;
    per-example gradients as in ``per_example_mean`` (``measures/_per_example.py``).

    Source: Aljundi et al. 2018, "Memory Aware Synapses: Learning what (not)
    to forget", ECCV, eq. 2-4.
    """

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return Omega for each parameter, a mean over ``ctx.x``."""
        return per_example_mean(ctx, squared_output_norm, transform=tf.abs)
