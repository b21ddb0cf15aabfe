"""Update tally: how far each parameter has travelled during training."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Param, register_measure


@register_measure("update_tally")
class UpdateTally(Measure):
    """Sum over training steps of the absolute size of each parameter's update.

        T_k = sum_{steps t} |theta_k(t + 1) - theta_k(t)|

    Training-time: :meth:`build` creates one float32 ``tf.Variable`` of zeros
    per parameter before the first step; :meth:`observe` adds ``|after -
    before|`` inside every compiled training step (grads are not read); the
    tally runs on across epochs and is never reset. Reads no sample data at
    score time (``ctx.x``/``ctx.y`` unused).

    Returns one float32 array per parameter, same shape, >= 0. Scaling: a SUM
    over steps, so scores grow with training length and learning rate.
    Cost: one subtraction, abs and add per parameter per step; memory one copy
    of the parameters. The seed's per-class-group tallies are not kept.

    Source: seed 002 ("update sizes" tally of |change| per datapoint, summed).
    """

    training_time = True

    def build(self, params: list[Param]) -> None:
        """Create a zero tally per parameter."""
        self._tally = [tf.Variable(tf.zeros(p.shape, tf.float32), trainable=False, name="tally") for p in params]

    def observe(self, grads: list, before: list, after: list) -> None:
        """Add |after - before| for one optimizer step (TF ops only)."""
        for tally, old, new in zip(self._tally, before, after, strict=True):
            tally.assign_add(tf.abs(tf.cast(new, tf.float32) - tf.cast(old, tf.float32)))

    def state(self) -> list:
        """The tallies, in parameter order."""
        return list(getattr(self, "_tally", []))

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return the tallies accumulated so far."""
        tallies = getattr(self, "_tally", None)
        if tallies is None:
            raise RuntimeError("update_tally is a training-time measure: call build(params) before score().")
        if [tuple(t.shape) for t in tallies] != [p.shape for p in ctx.params]:
            raise ValueError(f"ctx.params differ from the params given to build(). Received: {len(ctx.params)} params")
        return [np.asarray(t.numpy(), dtype=np.float32) for t in tallies]
