"""Sign flip: how rarely each parameter changes sign during training (the original study, seed 003)."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Param, register_measure


@register_measure("sign_flip")
class SignFlip(Measure):
    """One over one plus the number of training steps at which a parameter changed sign.

        F_k = sum_{steps t} [theta_k(t + 1) * theta_k(t) < 0],    S_k = 1 / (1 + F_k)

    A step onto or off exactly 0 is not a flip. Fewer flips means more
    important (the original's reading). Training-time: :meth:`build` zeros
    one float32 counter per parameter before the first step; :meth:`observe`
    counts inside every compiled step (grads unused); counts run on across
    epochs and are never reset. Reads no sample data at score time.

    Returns one float32 array per parameter, same shape, in (0, 1]. Scores
    are heavily tied (most parameters never flip and score exactly 1), so
    thresholding must break ties by rank, not by ``score < cutoff``. Cost:
    one multiply, compare and add per parameter per step; memory one copy of
    the parameters.

    Source: ``SignFlippingTracker.py`` of the original study (seed 003;
    hmcalister/Neural-Network-Weight-Importance-Measures), importance
    ``1 / (1 + flips)`` from its ``EWC_Methods.py``. The original compared
    against its first stored "previous weights", which were references to the
    live variables, not copies, so its first step was never counted; here
    every step is. Its ``reset_tracking`` appended new counters instead of
    clearing them (harmless in its trials, which never reset).
    """

    training_time = True

    def build(self, params: list[Param]) -> None:
        """Zero one flip counter per parameter."""
        self._flips = [tf.Variable(tf.zeros(p.shape, tf.float32), trainable=False, name="flips") for p in params]

    def observe(self, grads: list, before: list, after: list) -> None:
        """Count the parameters whose sign differs before and after one optimizer step (TF ops only)."""
        for flips, old, new in zip(self._flips, before, after, strict=True):
            flipped = tf.cast(old, tf.float32) * tf.cast(new, tf.float32) < 0
            flips.assign_add(tf.cast(flipped, tf.float32))

    def state(self) -> list:
        """The flip counters, in parameter order."""
        return list(getattr(self, "_flips", []))

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return ``1 / (1 + flips)`` per parameter."""
        if not hasattr(self, "_flips"):
            raise RuntimeError("sign_flip is a training-time measure: call build(params) before score().")
        if [tuple(f.shape) for f in self._flips] != [p.shape for p in ctx.params]:
            raise ValueError(f"ctx.params differ from the params given to build(). Received: {len(ctx.params)} params")
        return [(1.0 / (1.0 + f.numpy())).astype(np.float32) for f in self._flips]
