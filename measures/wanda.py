"""Wanda: the size of each weight times the norm of the input feature it multiplies."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Option, Param, register_measure
from measures._layer_inputs import input_means, unfold
from measures._utils import spread_over_kernel


def _reducer(layer):
    """Chunk sum of the per-example mean over positions of each squared input feature ``(F,)``; unfolds once."""

    def reduce(inputs):
        total = tf.reduce_sum(tf.square(tf.cast(inputs, tf.float32)), axis=0, keepdims=True)
        return tf.reduce_mean(unfold(layer, total), axis=1)[0]

    return reduce


def _positions(layer) -> int:  # output positions P: the rows unfold makes of one example
    return int(unfold(layer, tf.zeros((1, *layer.input.shape[1:]))).shape[1])


@register_measure("wanda")
class Wanda(Measure):
    """Weight magnitude times the L2 norm of its input feature (Wanda).

        Dense kernel (in, out):  S_io = |W_io| * ||X_i||, X_i = input i over the N examples (and positions)
        Conv kernel (kh, kw, cin, cout): X_pqc = input under tap (p, q, c) over examples and output positions
        Bias: S_o = |b_o| * ||1|| (it multiplies a constant 1)
        Other parameters (EinsumDense kernels and biases of attention projections included): S = |theta|

    ``norm="rms"`` (default): ``||X_i|| / sqrt(N P)``, the root mean square of x
    over examples and output positions; ``"l2"``: the paper's ``||X_i||_2``
    over the ``N P`` rows (P = 1 for Dense on 2-D input). Both rank alike
    within a layer and within an output unit (the paper's comparison group:
    scope ``output``); ``l2`` grows with sqrt(N), a constant, and sqrt(P_l),
    which in global scope favours conv layers with many positions. Conv
    inputs are unfolded (im2col: zeros under padding; strides, dilation,
    ``groups`` honoured); squaring and summing commute with unfolding.

    Versus MAAV: MAAV is ``|W_io| * mean |x_i|`` (an L1 mean, = mean |w x|);
    Wanda is ``|W_io| * sqrt(mean x_i^2)``, which weighs rare large inputs more.
    Reads ``ctx.x`` (inference mode). Returns one float32 array per parameter,
    same shape, >= 0. Cost: one forward pass over the sample, in chunks.

    Args:
        norm: ``"rms"`` or ``"l2"``.

    Raises:
        ValueError: invalid ``norm``; unsupported model (``measures/_layer_inputs.py``).

    Source: Sun, Liu, Bair and Kolter 2023, "A Simple and Effective Pruning
    Approach for Large Language Models" (Wanda), the pruning metric S_ij.
    """

    options = {"norm": Option(default="rms", choices=("rms", "l2"), doc="root mean square or the paper's L2 norm")}

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``|W| * ||X||`` for each kernel (bias and other parameters as documented)."""
        kernels = [p for p in ctx.params if p.role == "kernel" and p.kind in ("dense", "conv")]
        layers = list(dict.fromkeys(p.layer for p in kernels))
        reducers = [_reducer(layer) for layer in layers]
        squares = input_means(ctx.model, layers, reducers, ctx.x, ctx.batch_size, "wanda") if layers else []
        return [self._one(p, dict(zip(layers, squares, strict=True)), len(ctx.x)) for p in ctx.params]

    def _one(self, param: Param, squares: dict, n: int) -> np.ndarray:
        magnitude = np.abs(np.asarray(param.variable.numpy(), np.float64))
        if param.kind not in ("dense", "conv") or param.role not in ("kernel", "bias"):
            return magnitude.astype(np.float32)
        scale = n * _positions(param.layer) if self.norm == "l2" else 1.0
        if param.role == "bias":
            return (magnitude * np.sqrt(scale)).astype(np.float32)
        norms = np.sqrt(scale * squares[param.layer])
        return (magnitude * spread_over_kernel(norms, param.shape, getattr(param.layer, "groups", 1))).astype(np.float32)
