"""Class groups for training-time tallies: batch membership, attribution and shares (seed 002).

The groups are checked by the option rule :func:`harness.common.options.class_groups`.

Nothing here is a measure; the leading underscore keeps :func:`harness.common.registry.import_all`
from importing it as a plugin.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def group_weights(y, groups: list[list[int]]) -> tf.Tensor:
    """Membership of each example in each group: float32 ``(B, G)``, 1 where label_n is in group k.

    ``y`` holds class ids ``(B,)`` or ``(B, 1)``, or one-hot/probability rows
    ``(B, C)`` (read by argmax). An example in no group has a row of zeros.
    """
    y = tf.convert_to_tensor(y)
    one_hot = y.shape.rank == 2 and y.shape[-1] not in (None, 1)
    labels = tf.cast(tf.argmax(y, axis=-1) if one_hot else tf.reshape(y, [-1]), tf.int64)
    member = [tf.reduce_any(tf.equal(labels[:, None], tf.constant(g, tf.int64)[None, :]), axis=1) for g in groups]
    return tf.cast(tf.stack(member, axis=1), tf.float32)


def update_shares(grad, group_grads, weights) -> tf.Tensor:
    """Each group's share of one step's update, per parameter: ``(G, *shape)``, summing to <= 1.

        w_k = |G_k| / (sum_j |G_j| + |g - sum_j G_j|)     where the denominator is > 0
        w_k = n_k / B                                     elsewhere

    ``G_k`` is group k's part of the batch-mean gradient (:meth:`StepBatch.gradients`),
    ``g`` the step's gradient, so ``g - sum_j G_j`` is the part of examples in
    no group and of any regularisation penalty (its share is not tallied).
    ``n_k`` counts the batch's examples of group k. With one example per step
    (and no penalty), the example's group gets exactly 1 and the others 0.
    """
    mass = tf.abs(group_grads)
    total = tf.reduce_sum(mass, axis=0) + tf.abs(tf.cast(grad, tf.float32) - tf.reduce_sum(group_grads, axis=0))
    counts = tf.reduce_sum(weights, axis=0) / tf.cast(tf.shape(weights)[0], tf.float32)
    fallback = tf.reshape(counts, [-1] + [1] * (mass.shape.rank - 1))
    return tf.where(total > 0, mass / tf.where(total > 0, total, 1.0), fallback)


def shares(tallies: np.ndarray) -> np.ndarray:
    """Relative tallies ``T_k / sum_j T_j`` over axis 0 (for two groups a / (a + b)); NaN where all are 0."""
    tallies = np.asarray(tallies, np.float64)
    total = tallies.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, tallies / np.where(total > 0, total, 1.0), np.nan)


def target_score(tallies: np.ndarray, target: int) -> np.ndarray:
    """Group ``target``'s share as a float32 score; 1/G where no group tallied anything (no evidence either way)."""
    share = shares(tallies)[target]
    return np.nan_to_num(share, nan=1.0 / len(tallies)).astype(np.float32)
