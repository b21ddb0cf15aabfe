"""Synaptic Intelligence: each parameter's share of the loss decrease along the training path."""

import numpy as np
import tensorflow as tf

from measures import Measure, MeasureContext, Option, Param, register_measure
from measures._groups import group_weights, shares, target_score


def _zeros(shape: tuple) -> tf.Variable:
    return tf.Variable(tf.zeros(shape, tf.float32), trainable=False, name="omega")


@register_measure("si")
class SynapticIntelligence(Measure):
    """Path integral of gradient times update, normalised by total displacement.

        omega_k = sum_{steps t} -g_k(t) * (theta_k(t + 1) - theta_k(t))
        Omega_k = max(omega_k, 0) / ((theta_k(T) - theta_k(0))^2 + xi)

    ``g`` is the real training-loss gradient at ``theta(t)`` (not the update
    over the learning rate, which differs under momentum or Adam).
    ``theta(0)`` is snapshot at :meth:`build`, before the first step;
    ``theta(T)`` is the current value at score time. omega runs on across
    epochs and is never reset. Reads no sample data (``ctx.x``/``ctx.y``).

    With ``groups`` the path term is split exactly by the batch's examples:

        omega_{g,k} = sum_t -G_{g,k}(t) * (theta_k(t + 1) - theta_k(t))

    ``G_g`` the gradient of group g's examples' part of the batch-mean loss,
    so the groups' terms sum to omega_k when every example is in a group
    (examples in no group and any penalty are not tallied). The score is
    then group ``target``'s share ``max(omega_target, 0) / sum_g max(omega_g,
    0)`` (the displacement denominator cancels), 1/G where every omega_g <= 0.

    Args:
        xi: Damping of the denominator, a finite number > 0 (default 1e-3).
        groups: Lists of class ids, e.g. ``[[1, 7], [6, 8]]`` (spec ``si:groups=[[1,7],[6,8]]``).
        target: Index of the group whose share is the score (default 0).

    Returns one float32 array per parameter, same shape, >= 0 (omega is
    clipped at 0: noise can make it negative). Scaling: omega is a SUM over
    steps of loss-change estimates. Cost: a multiply-add per parameter per
    step; memory two copies of the parameters (omega and theta(0)).

    Raises:
        ValueError: ``xi`` is not a finite number > 0, bad ``groups`` or ``target``, or an unknown option.

    Source: Zenke, Poole and Ganguli 2017, "Continual Learning Through Synaptic
    Intelligence", eqs. 3-5, applied to one training run instead of per task.
    """

    training_time = True
    options = {
        "xi": Option(default=1e-3, type=float, above=0, doc="damping of the denominator"),
        "groups": Option(rule="class_groups", doc="lists of class ids, e.g. [[1,7],[6,8]]; the score is a group's share"),
        "target": Option(rule="group_index", doc="index of the group whose share is the score (default 0)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.xi = float(self.xi)
        self.needs_batch = self.groups is not None

    def build(self, params: list[Param]) -> None:
        """Zero omega (one per group with ``groups``) and snapshot theta(0)."""
        lead = (len(self.groups),) if self.groups else ()
        self._omega = [_zeros(lead + p.shape) for p in params]
        start = [np.array(p.variable.numpy(), dtype=np.float32) for p in params]
        self._theta0 = [tf.Variable(value, trainable=False, name="theta0") for value in start]

    def observe(self, grads: list, before: list, after: list, batch=None) -> None:
        """Add -g * (after - before) for one optimizer step, per group when grouped (TF ops only)."""
        if self.groups is not None:
            grads = batch.gradients(group_weights(batch.y, self.groups))
        for omega, grad, old, new in zip(self._omega, grads, before, after, strict=True):
            if grad is not None:
                step = tf.cast(new, tf.float32) - tf.cast(old, tf.float32)
                omega.assign_add(-tf.cast(tf.convert_to_tensor(grad), tf.float32) * step)

    def state(self) -> list:
        """The omega accumulators, then the theta(0) snapshots, in parameter order."""
        return [*getattr(self, "_omega", []), *getattr(self, "_theta0", [])]

    def score(self, ctx: MeasureContext) -> list[np.ndarray]:
        """Return Omega for each parameter in ``ctx.params``."""
        if not hasattr(self, "_omega"):
            raise RuntimeError("si is a training-time measure: call build(params) before score().")
        lead = 1 if self.groups else 0
        if [tuple(o.shape)[lead:] for o in self._omega] != [p.shape for p in ctx.params]:
            raise ValueError(f"ctx.params differ from the params given to build(). Received: {len(ctx.params)} params")
        if self.groups:
            return [target_score(np.maximum(o.numpy(), 0), self.target) for o in self._omega]
        return [self._one(*args) for args in zip(self._omega, self._theta0, ctx.variables, strict=True)]

    def relative(self) -> list[np.ndarray]:
        """With groups, each group's share of the clipped path terms (float64, ``(G, *shape)``), NaN where all <= 0."""
        return [shares(np.maximum(o.numpy(), 0)) for o in self._omega]

    def _one(self, omega: tf.Variable, theta0: tf.Variable, variable) -> np.ndarray:
        moved = np.asarray(variable.numpy(), dtype=np.float32) - theta0.numpy()
        return (np.maximum(omega.numpy(), 0) / (moved**2 + np.float32(self.xi))).astype(np.float32)
