"""Weight magnitude: the classic pruning criterion."""

import numpy as np

from measures import Measure, MeasureContext, register_measure


@register_measure("magnitude")
class Magnitude(Measure):
    """Absolute value of each parameter.

        S_k = |theta_k|

    Reads no data. Returns one float32 array per parameter, same shape, >= 0.
    Cost: O(#params).

    Source: Han et al. 2015, "Learning both Weights and Connections for
    Efficient Neural Networks"; the magnitude baseline of seed 004.
    """

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return |theta| for each parameter."""
        return [np.abs(np.asarray(v.numpy(), dtype=np.float32)) for v in ctx.variables]
