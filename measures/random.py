"""Random importance: the baseline every measure must beat."""

import numpy as np

from measures import Measure, MeasureContext, register_measure


@register_measure("random")
class RandomScores(Measure):
    """I.i.d. uniform scores, seeded.

        S_k ~ U[0, 1), independently for every parameter k.

    Reads no data. Returns one float32 array per parameter, same shape, in
    [0, 1). Draws from ``numpy.random.default_rng(ctx.seed)`` in parameter
    order, so the same seed gives the same scores. Cost: O(#params).

    Source: the random baseline of the original study (seed 003).
    """

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return uniform random scores shaped like each parameter."""
        rng = np.random.default_rng(ctx.seed)
        return [rng.random(p.shape, dtype=np.float32) for p in ctx.params]
