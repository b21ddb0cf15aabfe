"""GraSP: how much removing a weight would reduce the gradient flow, from one Hessian-gradient product."""

import numpy as np

from measures import Measure, MeasureContext, register_measure
from measures._hessian import hessian_vector_product, mean_loss_gradient


@register_measure("grasp")
class Grasp(Measure):
    """Gradient signal preservation, signed so that higher means more important.

        importance_k = w_k * (H g)_k  =  -S(-w)_k,      S(-w) = -w ⊙ H g   (the paper's score)

    ``g`` and ``H`` are the gradient and Hessian of the MEAN loss
    ``L = (1/N) sum_n loss(y_n, f(x_n))`` over the importance sample. The
    gradient norm ``||g||^2`` is the gradient flow; removing weight ``k``
    (a step ``-w_k``) changes it by ``-2 w_k (H g)_k = 2 S(-w)_k`` to first order.

    Sign: GraSP removes the weights with the HIGHEST ``S(-w) = -w ⊙ Hg``,
    those whose removal reduces the gradient flow least or raises it
    (Wang et al. 2020, Algorithm 1; the authors' code keeps scores below the
    top-p cut). The harness removes the LOWEST scores first, so this measure
    returns ``-S(-w) = w ⊙ Hg``: the harness's least-important-first order is
    GraSP's removal order. Scores are signed and may be negative; ``lamp``
    normalisation refuses them. Not GraSP-abs (``|w ⊙ Hg|``).

    ``Hg`` is exact: one Hessian-vector product (back-over-back autodiff) of
    the mean loss with the fixed vector ``g``. The paper's code divides the
    logits by a temperature (T = 200) for these products; none is applied
    here (T = 1), and its normalisation by ``|sum S|`` (one constant) is
    omitted since it changes no ranking. Reads ``ctx.x``, ``ctx.y``, the
    task's loss (any Keras loss twice differentiable), inference mode.

    Returns:
        One float32 array per prunable variable, same shape, signed.

    Scaling: g and H are MEANS over the N examples. Cost: one backward pass
    for ``g``, then one Hessian-vector product (about two more backward
    passes) over the sample, in chunks of ``ctx.batch_size``.

    Source: Wang, Zhang and Grosse 2020, "Picking Winning Tickets Before
    Training by Preserving Gradient Flow", ICLR.
    """

    signed = True

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``w * (H g)`` for each parameter."""
        hg = hessian_vector_product(ctx, mean_loss_gradient(ctx))
        return [(v.numpy() * h).astype(np.float32) for v, h in zip(ctx.variables, hg, strict=True)]
