"""Nested masks of a sweep as steps, and their incremental application to the live variables."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from harness.thresholding.threshold import Thresholder, check_fraction, element_values
from measures import Param


class Schedule:
    """The nested masks of one sweep as steps: which elements each threshold adds.

    Thresholds are taken in ascending order (``order`` maps back to the
    caller's). Element ``e`` of parameter ``p`` is replaced from step
    ``steps[p][e]`` on (``K`` = never), so the elements step ``k`` adds are
    ``flat_order[p][bounds[p, k]:bounds[p, k + 1]]`` (flat indices).

    Args:
        params: The prunable parameters, in the thresholder's order.
        thresholder: Ranking of the items; anything with ``item_steps``,
            ``element_items`` and ``n_params`` whose masks are nested (and
            ``element_covers``, when items also mask elements they cover).
        replacement: Values for replaced elements, one array per parameter.
        thresholds: Fractions t in [0, 1], any order.

    Raises:
        ValueError: a threshold outside [0, 1].
    """

    def __init__(self, params: list[Param], thresholder: Thresholder, replacement: list[np.ndarray], thresholds):
        thresholds = np.asarray(thresholds, np.float64).reshape(-1)
        for t in thresholds:
            check_fraction(t)
        self.order = np.argsort(thresholds, kind="stable")
        self.thresholds = thresholds[self.order]
        self.k = k = len(thresholds)
        item_steps = thresholder.item_steps(self.thresholds).astype(np.int16 if k < 2**15 - 1 else np.int32)
        self.steps = element_values(item_steps, thresholder.element_items, getattr(thresholder, "element_covers", None))
        self.flat_order = [np.argsort(s.ravel(), kind="stable").astype(np.int32) for s in self.steps]
        self.bounds = np.stack([np.r_[0, np.cumsum(np.bincount(s.ravel(), minlength=k + 1))] for s in self.steps])
        self.n_replaced = self.bounds[:, 1 : k + 1].sum(axis=0)
        self.n_params = thresholder.n_params
        self.zero_steps = {id(p.variable): np.where(r == 0, s, k) for p, r, s in zip(params, replacement, self.steps)}


class MaskBuffers:
    """Applies a schedule's masks to the live variables step by step, and restores them bit for bit.

    Per parameter, the flat indices of its elements in step order and their
    replacement values sit in device buffers (loaded once per sweep), beside
    a flat copy of the variable. Going from step ``a`` to step ``k`` scatters
    only the elements with a step in ``[a, k]`` into the flat copy (masks are
    nested, so nothing else changes) and assigns it, reshaped, to the
    variable: a one-dimensional scatter plus a copy costs less than a
    scatter by coordinates.

    Args:
        params: The prunable parameters (fixed for the buffers' lifetime).
    """

    def __init__(self, params: list[Param]):
        self.variables = [p.variable for p in params]
        self.resources = [v.value for v in self.variables]  # the backing tf.Variable of each Keras variable
        self.shapes = [tuple(p.shape) for p in params]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.flat = [tf.Variable(tf.zeros([n], v.dtype), trainable=False) for n, v in zip(sizes, self.variables)]
        self.indices = [tf.Variable(tf.zeros([n], tf.int32), trainable=False) for n in sizes]
        self.values = [tf.Variable(tf.zeros([n], v.dtype), trainable=False) for n, v in zip(sizes, self.variables)]
        self.span_spec = tf.TensorSpec([2, len(params)], tf.int32)
        self.originals, self.bounds, self.applied = [], None, 0
        self._zero = [True] * len(params)  # whether each values buffer holds zeros only

    def load(self, schedule: Schedule, replacement: list[np.ndarray], moved: list | None = None) -> None:
        """Take a new sweep's schedule; the variables must hold their original values. Call :meth:`sync` next.

        Args:
            schedule: The sweep's schedule.
            replacement: Values for replaced elements, one array per parameter.
            moved: Per parameter, the new flat index of every old one when
                the elements are reordered during the sweep (then call
                :meth:`sync` once they are; None: not moved).
        """
        moved = moved or [None] * len(self.indices)
        for j, (index, values, order, r, new) in enumerate(zip(self.indices, self.values, schedule.flat_order,
                                                                 replacement, moved)):
            index.assign(order if new is None else new[order])
            zero = not np.any(r)
            if not (zero and self._zero[j]):  # zero replacement values stay in place from one sweep to the next
                values.assign(tf.zeros_like(values) if zero else np.asarray(r).ravel()[order])
            self._zero[j] = zero
        self.originals = [np.array(v.numpy(), copy=True) for v in self.variables]
        self.bounds, self.applied = schedule.bounds.astype(np.int32), 0

    def sync(self) -> None:
        """Copy the variables' current values into the flat copies (one compiled call, traced on first use)."""
        self._sync()

    @functools.cached_property
    def _sync(self):
        def copy():
            for flat, v in zip(self.flat, self.resources):
                flat.assign(tf.reshape(v, [-1]))
        return tf.function(copy, autograph=False).get_concrete_function()

    @functools.cached_property
    def apply(self):
        """:meth:`scatter` as one compiled function of the span (traced on first use)."""
        return tf.function(self.scatter, input_signature=[self.span_spec], autograph=False).get_concrete_function()

    def scatter(self, span):
        """In a graph: write the elements in ``[span[0, j], span[1, j])`` of parameter j's step order."""
        for j, (v, flat, index, values) in enumerate(zip(self.resources, self.flat, self.indices, self.values)):
            flat.scatter_update(tf.IndexedSlices(values[span[0, j] : span[1, j]], index[span[0, j] : span[1, j]]))
            v.assign(tf.reshape(flat, v.shape))

    def advance(self, k: int) -> np.ndarray:
        """The span that brings the variables from the applied steps to step ``k``'s mask; marks it applied.

        Returns:
            int32 array ``(2, n_params)``: per parameter, the range of its step order to write.

        Raises:
            ValueError: ``k`` is below a step already applied (masks only grow; restore first).
        """
        if k + 1 < self.applied:
            raise ValueError(f"step {k} is below the applied step {self.applied - 1}; restore first")
        span = self.bounds[:, [self.applied, k + 1]].T
        self.applied = k + 1
        return span

    def span(self, k: int) -> tf.Tensor:
        """:meth:`advance` as a tensor."""
        return tf.constant(self.advance(k))

    def restore(self) -> None:
        """Assign the original values (the flat copies keep theirs until :meth:`sync` or :meth:`load`)."""
        for v, original in zip(self.variables, self.originals):
            v.assign(original)
        self.applied = 0

