"""Mean activated absolute value (MAAV): the mean size of what each weight contributes."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Param, register_measure
from measures._layer_inputs import input_means, unfold
from measures._utils import spread_over_kernel


def _reads_inputs(param: Param) -> bool:
    return param.role == "kernel" and param.kind in ("dense", "conv")


def _reducer(layer):
    """Sum over a chunk of the per-example mean |input| under each kernel tap, shape ``(F,)``.

    Unfolding is linear and pads with zeros, so the chunk's |inputs| are summed
    first and a single summed input is unfolded: ``sum_n mean_P unfold(|a_n|) =
    mean_P unfold(sum_n |a_n|)``.
    """

    def reduce(inputs):
        total = tf.reduce_sum(tf.abs(tf.cast(inputs, tf.float32)), axis=0, keepdims=True)
        return tf.reduce_mean(unfold(layer, total), axis=1)[0]  # unfold: (1, P, F)

    return reduce


@register_measure("maav")
class MeanActivatedAbsoluteValue(Measure):
    """Mean over the sample of the absolute value of each weight times its input.

        Dense kernel W (in x out):     S_ij   = (1/N) sum_n |a_ni W_ij| = mean_n |a_ni| * |W_ij|
        Conv kernel W (kh, kw, cin, cout):
                                       S_pqco = mean_{n, output position} |patch_pqc| * |W_pqco|
        Bias b:                        S = |b|
        Other parameters:              S = |theta|   (fallback: no defined input; EinsumDense kernels of
                                                     attention projections included)

    Since |a w| = |a| |w|, the per-example products are never materialised.
    ``a_n`` is the layer's input for example ``n`` of ``ctx.x`` in inference
    mode (``ctx.y`` is not read); a conv patch holds the input under each
    kernel tap, zero where the tap falls on padding, honouring strides,
    dilation, ``groups`` and ``channels_first``. Dense layers on inputs with
    more than 2 axes are averaged over the extra (position) axes too.

    Returns one float32 array per parameter, same shape, >= 0. Scaling: a MEAN
    over examples (and over output positions for convs), so scores do not grow
    with N. Cost: one forward pass over the sample, in chunks of
    ``ctx.batch_size``; a conv layer's chunk is unfolded to ``kh * kw`` times
    its input size. Conv1D and Conv2D are supported, other convs raise
    ``ValueError``; the model must be functional or Sequential
    (see ``measures/_layer_inputs.py``).

    Source: seeds 000 and 001 (Sparana's "Mean Activated Absolute Values" blog,
    lobotomizer.py): the per-datapoint loop of steps 1-9, vectorised.
    """

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return the MAAV of each parameter in ``ctx.params``."""
        kernels = [p for p in ctx.params if _reads_inputs(p)]
        layers = [p.layer for p in kernels]
        reducers = [_reducer(layer) for layer in layers]
        means = input_means(ctx.model, layers, reducers, ctx.x, ctx.batch_size, "maav") if kernels else []
        by_param = {id(p): m for p, m in zip(kernels, means, strict=True)}
        return [self._one(p, by_param.get(id(p))) for p in ctx.params]

    @staticmethod
    def _one(param: Param, mean_abs: np.ndarray | None) -> np.ndarray:
        magnitude = np.abs(np.asarray(param.variable.numpy(), dtype=np.float32))
        if mean_abs is None:
            return magnitude
        groups = getattr(param.layer, "groups", 1)
        return (magnitude * spread_over_kernel(mean_abs, param.shape, groups)).astype(np.float32)
