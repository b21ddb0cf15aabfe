"""Optimal Brain Damage: the loss increase a quadratic model predicts for deleting each weight."""

import numpy as np

from measures import Measure, MeasureContext, Option, register_measure
from measures._hessian import basis_probes, hessian_probe_sum, parameter_count, rademacher_probes
from measures._losses import output_hessian_scale, output_size
from measures._per_example import fisher_diagonal


@register_measure("obd")
class OptimalBrainDamage(Measure):
    """OBD saliency from a diagonal of the Hessian of the mean training loss.

        s_k = 0.5 * H_kk * theta_k^2,    H = Hessian of L = (1/N) sum_n loss(y_n, f(x_n))

    ``hessian`` picks how ``H_kk`` is computed:

    - ``"ggn"`` (default): exact diagonal of the generalized Gauss-Newton
      matrix ``(1/N) sum_n J_n^T H_out,n J_n``. For softmax cross-entropy the
      split is at the logits (also when the model outputs probabilities), so
      ``H_out = diag(p) - p p^T`` and diag(G) is the true Fisher diagonal,
      computed exactly over the classes; for Keras MSE (a mean over the D
      outputs) ``H_out = (2/D) I``. Other losses raise ``ValueError``. >= 0.
    - ``"hutchinson"``: ``(1/m) sum_i z_i * (H z_i)`` with ``m = samples``
      Rademacher probes seeded by ``ctx.seed``; unbiased, may be negative.
    - ``"exact"``: the true Hessian diagonal, from one Hessian-vector product
      per parameter; refused above ``max_params`` prunable parameters. It can
      be negative away from a minimum; the raw value is returned.

    Hutchinson and exact differentiate ``ctx.loss`` itself (any Keras loss)
    back-over-back, vectorised over probes. Reads ``ctx.x``, ``ctx.y``.

    Args:
        hessian: ``"ggn"``, ``"hutchinson"`` or ``"exact"``.
        samples: Hutchinson probes ``m`` (positive int, default 100).
        max_params: Largest parameter count ``"exact"`` accepts (default 5000).

    Returns:
        One float32 array per prunable variable, same shape.

    Scaling: H is the Hessian of the MEAN loss over the N examples. Cost: ggn
    as the true Fisher (C backward passes per chunk, C outputs); hutchinson
    m HVPs over the sample; exact one HVP over the sample per parameter.

    Source: LeCun, Denker and Solla 1990, "Optimal Brain Damage", eq. 5-7;
    seed 004. GGN: Schraudolph 2002; Hutchinson 1989.
    """

    options = {
        "hessian": Option(default="ggn", choices=("ggn", "hutchinson", "exact"), doc="the Hessian diagonal's estimate"),
        "samples": Option(default=100, type=int, low=1, doc="Rademacher probes of hutchinson"),
        "max_params": Option(default=5000, type=int, low=1, doc="the most parameters exact accepts"),
    }
    signed_when = {"hessian": ("hutchinson", "exact")}  # a Hessian diagonal (not the GGN's) may be negative

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``0.5 * H_kk * theta_k^2`` for each parameter."""
        diag = {"ggn": self._ggn, "hutchinson": self._hutchinson, "exact": self._exact}[self.hessian](ctx)
        return [(0.5 * h * np.square(v.numpy())).astype(np.float32) for h, v in zip(diag, ctx.variables, strict=True)]

    def _ggn(self, ctx: MeasureContext) -> list[np.ndarray]:
        scale = output_hessian_scale(ctx.loss, output_size(ctx))
        return [scale * f for f in fisher_diagonal(ctx, "true")]

    def _hutchinson(self, ctx: MeasureContext) -> list[np.ndarray]:
        probes = rademacher_probes(ctx.params, self.samples, ctx.seed)
        return [t / self.samples for t in hessian_probe_sum(ctx, probes)]

    def _exact(self, ctx: MeasureContext) -> list[np.ndarray]:
        count = parameter_count(ctx.params)
        if count > self.max_params:
            raise ValueError(
                f"obd:hessian=exact needs one Hessian-vector product per parameter and is for small models: "
                f"{count} prunable parameters exceed max_params={self.max_params}. "
                "Use hessian='ggn' or 'hutchinson', or raise max_params."
            )
        return hessian_probe_sum(ctx, basis_probes(ctx.params))
