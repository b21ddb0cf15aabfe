"""Weight change: how little each parameter moved during training (the original study, seed 003)."""

import numpy as np

from measures import MeasureContext, register_measure
from measures.update_tally import UpdateTally


@register_measure("weight_change")
class WeightChange(UpdateTally):
    """One over one plus the total distance a parameter travelled: ``update_tally`` read the other way round.

        T_k = sum_{steps t} |theta_k(t + 1) - theta_k(t)|,    S_k = 1 / (1 + T_k)

    ``T`` is exactly ``update_tally``'s quantity: this class inherits its
    accumulator (:meth:`build`, :meth:`observe`, :meth:`state`) and only maps
    the tally to the original's importance. Moving less means more important,
    so per weight the ranking is ``update_tally``'s reversed. Training-time,
    never reset; reads no sample data at score time.

    Returns one float32 array per parameter, same shape, in (0, 1]. Cost and
    memory as ``update_tally``.

    Source: ``TotalWeightChangeTracker.py`` of the original study (seed 003;
    hmcalister/Neural-Network-Weight-Importance-Measures), importance
    ``1 / (1 + x)`` from its ``EWC_Methods.py``. Its docstring asks for the
    total distance moved, but it summed the signed change, which telescopes
    to ``theta(T) - theta(1)`` (after its lost first step); ``1 / (1 + x)`` of that is negative for
    ``x < -1`` and infinite at ``x = -1``, and for small ``x`` it ranks by
    net signed drift. Its first step was lost (live variable references), and
    ``reset_tracking`` appended. Here: the absolute change of every step.
    """

    options = {}  # no class groups: 1 / (1 + share) would mean nothing
    groups = target = None

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``1 / (1 + T)`` per parameter."""
        return [(1.0 / (1.0 + tally)).astype(np.float32) for tally in super().score(ctx)]
