"""Momentum: how rarely each parameter's update reverses direction (the original study, seed 003)."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Param, register_measure


def _zeros(p: Param, name: str) -> tf.Variable:
    return tf.Variable(tf.zeros(p.shape, tf.float32), trainable=False, name=name)


@register_measure("momentum")
class Momentum(Measure):
    """One over one plus the number of reversals of a parameter's update direction.

        d_k(t) = theta_k(t + 1) - theta_k(t)
        R_k = sum_{steps t >= 2} [d_k(t) * d_k(t - 1) < 0],    S_k = 1 / (1 + R_k)

    The first step has no previous direction and counts nothing; a zero
    update breaks the chain (the next step compares with 0 and counts
    nothing), as in the original. Fewer reversals means more important.
    Training-time: :meth:`build` zeros the counters and the previous update;
    :meth:`observe` runs inside every compiled step (grads unused); counts run
    on across epochs and are never reset. Reads no sample data at score time.

    Returns one float32 array per parameter, same shape, in (0, 1]. Cost: a
    subtraction, multiply, compare and add per parameter per step; memory two
    copies of the parameters (counters and the previous update).

    Source: ``MomentumBasedTracker.py`` of the original study (seed 003;
    hmcalister/Neural-Network-Weight-Importance-Measures), importance
    ``1 / (1 + changes)`` from its ``EWC_Methods.py``. The original stored
    references to the live variables as its first "previous weights", so its
    first update was read as 0 and the first reversal it could count was
    between steps 2 and 3; here counting starts between steps 1 and 2. Its
    ``reset_tracking`` appended instead of clearing, and initialised the
    counters and previous momenta as one shared list.
    """

    training_time = True

    def build(self, params: list[Param]) -> None:
        """Zero the reversal counters and the previous update."""
        self._reversals = [_zeros(p, "reversals") for p in params]
        self._last = [_zeros(p, "last_update") for p in params]

    def observe(self, grads: list, before: list, after: list) -> None:
        """Count reversals of the update direction for one optimizer step (TF ops only)."""
        for reversals, last, old, new in zip(self._reversals, self._last, before, after, strict=True):
            update = tf.cast(new, tf.float32) - tf.cast(old, tf.float32)
            reversals.assign_add(tf.cast(update * last < 0, tf.float32))
            last.assign(update)

    def state(self) -> list:
        """The reversal counters, then the previous updates, in parameter order."""
        return [*getattr(self, "_reversals", []), *getattr(self, "_last", [])]

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``1 / (1 + reversals)`` per parameter."""
        if not hasattr(self, "_reversals"):
            raise RuntimeError("momentum is a training-time measure: call build(params) before score().")
        if [tuple(r.shape) for r in self._reversals] != [p.shape for p in ctx.params]:
            raise ValueError(f"ctx.params differ from the params given to build(). Received: {len(ctx.params)} params")
        return [(1.0 / (1.0 + r.numpy())).astype(np.float32) for r in self._reversals]
