"""Diagonal Fisher information: the expected squared per-example gradient of the log-likelihood."""

import numpy as np

from measures import Measure, MeasureContext, Option, register_measure
from measures._per_example import fisher_diagonal


@register_measure("fisher")
class Fisher(Measure):
    """Diagonal Fisher information of the model's log-likelihood.

        empirical:  F_k = (1/N) sum_n (d log p(y_n | x_n) / d theta_k)^2
        true:       F_k = (1/N) sum_n sum_c p_c(x_n) (d log p_c(x_n) / d theta_k)^2

    The likelihood is read from the task's loss: softmax cross-entropy
    (``SparseCategoricalCrossentropy`` or ``CategoricalCrossentropy``, logits
    or probabilities; from probabilities the log of the clipped, normalised
    probabilities is used, and label smoothing is applied to the empirical
    targets) or ``MeanSquaredError`` read as a unit-variance Gaussian,
    ``log p = -0.5 ||y - f(x)||^2 + const``; its true Fisher is
    ``(1/N) sum_n sum_j (d f_j(x_n) / d theta_k)^2``.

    Reads ``ctx.x``, and ``ctx.y`` for the empirical kind (class ids, one-hot
    rows or regression targets). The true kind is the exact expectation over
    the C outputs, not a sample.

    Args:
        kind: ``"empirical"`` (default) uses the labels; ``"true"`` takes the
            expectation under the model's predictive distribution.

    Returns:
        One float32 array per prunable variable, same shape, >= 0.

    Scaling: a MEAN over the N examples (not a sum). The square of a batch
    gradient is not the Fisher: gradients are per example. Cost: one forward
    pass and 1 (empirical) or C (true) backward passes per chunk of examples;
    Dense kernels need no per-example gradient in memory (sum of outer
    products of squares), Conv kernels hold one per example and class, other
    parameters go through ``tf.vectorized_map`` (see ``per_example_mean`` in
    ``measures/_per_example.py``).

    Raises:
        ValueError: ``kind`` is invalid, or the loss is not one of the above.
            Received: loss=<class name>.

    The original study's "Fisher" (seed 003, ``FisherInformationMatrixCalculator.py``)
    is not this: it squared the gradient of ``log(outputs)`` summed over a
    batch of 32 and all 10 outputs, with logits as outputs (no softmax, no
    labels, one gradient per batch, not per example).

    Source: Fisher 1925; as an importance, Kirkpatrick et al. 2017,
    "Overcoming catastrophic forgetting in neural networks" (EWC), eq. 3;
    true vs empirical: Kunstner et al. 2019, "Limitations of the empirical
    Fisher approximation".
    """

    options = {"kind": Option(default="empirical", choices=("empirical", "true"),
                              doc="empirical: the labels; true: the expectation under the model")}

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return the diagonal Fisher of each parameter, a mean over ``ctx.x``."""
        return fisher_diagonal(ctx, self.kind)
