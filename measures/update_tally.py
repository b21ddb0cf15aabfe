"""Update tally: how far each parameter has travelled during training, optionally per class group."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Option, Param, register_measure
from measures._groups import group_weights, shares, target_score, update_shares


@register_measure("update_tally")
class UpdateTally(Measure):
    """Sum over training steps of the absolute size of each parameter's update.

        T_k = sum_{steps t} |theta_k(t + 1) - theta_k(t)|

    With ``groups`` (seed 002's per-class-group tallies) each step's update is
    split between the groups of the batch's examples, per parameter:

        T_{g,k} = sum_t w_{g,k}(t) * |theta_k(t + 1) - theta_k(t)|

    with ``w_g = |G_g| / (sum_j |G_j| + |g - sum_j G_j|)`` (``n_g / B`` where
    that is 0/0; :func:`measures._groups.update_shares`), ``G_g`` the gradient
    of group g's examples' part of the batch-mean loss. Exact with batch size
    1 (the example's group gets the whole update, as in the seed); with
    minibatches an approximation: the joint update is split in proportion to
    each group's gradient magnitude, although the groups' gradients may cancel.
    The score is then group ``target``'s share ``T_{target} / sum_g T_g``
    (for two groups a / (a + b), the seed's "relative updating"), 1/G where
    nothing was tallied; :meth:`tallies` gives the raw ``(G, *shape)`` tallies.

    Args:
        groups: Lists of class ids, e.g. ``[[1, 7], [6, 8]]`` (spec
            ``update_tally:groups=[[1,7],[6,8]]``); examples in no group are not tallied.
        target: Index of the group whose share is the score (default 0).

    Training-time: tallies (``(G, *shape)`` with groups) are zeroed at
    :meth:`build`, grow in every compiled step, never reset. Reads no sample
    data. Returns one float32 array per parameter, same shape, >= 0: a SUM
    over steps (a share in [0, 1] with groups). Cost: an abs and add per
    parameter per step; with groups G extra backward passes per step.

    Raises:
        ValueError: bad ``groups`` (see :func:`harness.common.options.class_groups`) or ``target``.

    Source: seed 002 ("update sizes" tally of |change| per datapoint, summed per class group).
    """

    training_time = True
    options = {
        "groups": Option(rule="class_groups", doc="lists of class ids, e.g. [[1,7],[6,8]]; the score is a group's share"),
        "target": Option(rule="group_index", doc="index of the group whose share is the score (default 0)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.needs_batch = self.groups is not None

    def build(self, params: list[Param]) -> None:
        """Create a zero tally per parameter (one per group with ``groups``)."""
        lead = (len(self.groups),) if self.groups else ()
        self._tally = [tf.Variable(tf.zeros(lead + p.shape, tf.float32), trainable=False, name="tally") for p in params]

    def observe(self, grads: list, before: list, after: list, batch=None) -> None:
        """Add |after - before| for one optimizer step, split by group when grouped (TF ops only)."""
        steps = [tf.abs(tf.cast(new, tf.float32) - tf.cast(old, tf.float32)) for old, new in zip(before, after)]
        if self.groups is None:
            for tally, step in zip(self._tally, steps, strict=True):
                tally.assign_add(step)
            return
        weights = group_weights(batch.y, self.groups)
        for tally, grad, split, step in zip(self._tally, grads, batch.gradients(weights), steps, strict=True):
            tally.assign_add(update_shares(grad, split, weights) * step[None])

    def state(self) -> list:
        """The tallies, in parameter order."""
        return list(getattr(self, "_tally", []))

    def tallies(self) -> list[np.ndarray]:
        """The raw tallies, float32, ``(G, *shape)`` per parameter with groups, else ``shape``."""
        if getattr(self, "_tally", None) is None:
            raise RuntimeError("update_tally is a training-time measure: call build(params) before score().")
        return [np.asarray(t.numpy(), dtype=np.float32) for t in self._tally]

    def relative(self) -> list[np.ndarray]:
        """Per group its share ``T_g / sum_j T_g`` (float64, ``(G, *shape)``), NaN where nothing was tallied."""
        return [shares(t) for t in self.tallies()]

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return the tallies (with groups: group ``target``'s share)."""
        tallies = self.tallies()
        lead = 1 if self.groups else 0
        if [t.shape[lead:] for t in tallies] != [p.shape for p in ctx.params]:
            raise ValueError(f"ctx.params differ from the params given to build(). Received: {len(ctx.params)} params")
        return [target_score(t, self.target) for t in tallies] if self.groups else tallies
