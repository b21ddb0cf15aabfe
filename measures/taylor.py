"""First-order Taylor importance: the squared first-order estimate of the loss change of removing a weight."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Option, register_measure
from measures._hessian import mean_loss_gradient
from measures._per_example import per_example_mean


def example_loss(loss, outputs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The task's loss of each example, shape ``(B, 1)``."""
    return loss.call(y, outputs)[:, None]


@register_measure("taylor")
class Taylor(Measure):
    """First-order Taylor importance of each weight, (g * w)^2.

        batch:    I_k = sum_b (|b| / N) (g_b,k * w_k)^2,   g_b = d/dw (1/|b|) sum_{n in b} loss_n
        example:  I_k = (1/N) sum_n (g_n,k * w_k)^2 = w_k^2 * (1/N) sum_n g_n,k^2

    ``(g w)^2`` is the square of the first-order estimate ``g w`` of the loss
    change when ``w`` is set to 0. ``batch`` (default) follows the paper's
    practice: the gradient of the mean loss over each minibatch, squared and
    averaged over minibatches; batches partition the sample into blocks of
    ``batch_size`` (seeded by ``ctx.seed``; the last may be smaller and is
    weighted by its share). ``batch_size=1`` gives the per-example scores (in
    a Python loop; ``example`` computes them vectorised with
    ``per_example_mean``), ``batch_size >= N`` squares the full-sample
    gradient (= snip^2). As ``E (g_b w)^2 ~ (g w)^2 + Var(g_n w) / |b|``, the
    batch size moves the score between the gradient's signal and its noise.
    For cross-entropy, ``example`` is ``w^2`` times the empirical Fisher.

    Reads ``ctx.x``, ``ctx.y`` and the task's loss (any Keras loss), in
    inference mode. Returns one float32 array per parameter, same shape,
    >= 0. Scaling: a MEAN over examples. Cost: one backward pass over the
    sample (in batches, or chunks of ``ctx.batch_size`` for ``example``).

    The paper's filter criterion squares the SUM of ``g w`` over a filter;
    here items pool per-weight ``(g w)^2`` (``sum`` pooling over a unit is the
    per-weight variant of the authors' code).

    Args:
        accumulation: ``"batch"`` or ``"example"``.
        batch_size: Minibatch size for ``"batch"`` (positive int, default 32).

    Raises:
        ValueError: invalid option, quoting it.

    Source: Molchanov et al. 2019, "Importance Estimation for Neural Network
    Pruning", CVPR, first-order criterion; accumulation over minibatches as in
    the authors' code (NVlabs/Taylor_pruning, ``pruning_engine.py``).
    """

    options = {
        "accumulation": Option(default="batch", choices=("batch", "example"), doc="minibatch or per-example gradients"),
        "batch_size": Option(default=32, type=int, low=1, doc="minibatch size of batch"),
    }

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return (g * w)^2 for each parameter, accumulated as configured."""
        weights = [np.asarray(v.numpy(), np.float64) for v in ctx.variables]
        if self.accumulation == "example":
            squares = per_example_mean(ctx, example_loss, (np.asarray(ctx.y, np.float32),))
            return [(s * w**2).astype(np.float32) for s, w in zip(squares, weights, strict=True)]
        order = np.random.default_rng(ctx.seed).permutation(len(ctx.x))
        total = [np.zeros_like(w) for w in weights]
        for start in range(0, len(order), self.batch_size):
            batch = np.sort(order[start:start + self.batch_size])
            grads = mean_loss_gradient(ctx, batch)
            total = [t + len(batch) / len(order) * (g * w) ** 2 for t, g, w in zip(total, grads, weights, strict=True)]
        return [t.astype(np.float32) for t in total]
