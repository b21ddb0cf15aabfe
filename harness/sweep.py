"""Threshold sweeps on the live model: assign masked weights, evaluate, restore."""

from __future__ import annotations

import time
import zlib

import keras
import numpy as np
import tensorflow as tf

from harness.threshold import Thresholder, check_choice
from measures import Param

REPLACEMENTS = ("zero", "random")


def per_example_loss(loss: keras.losses.Loss) -> keras.losses.Loss:
    """A copy of a Keras loss object that returns one value per example."""
    config = dict(loss.get_config(), reduction=None)
    return type(loss).from_config(config)


class Evaluator:
    """Validation loss and accuracy of a model through one compiled function.

    The loss is the mean over examples of the task's per-example loss (data
    loss only; regularisation penalties are not added). Accuracy is the
    fraction of examples whose arg-max output matches the label, or NaN when
    ``classification`` is False.

    Args:
        model: The live model; evaluated in inference mode.
        loss: The task's Keras loss.
        x: Validation inputs, shape ``(n, *input_shape)``.
        y: Validation targets, shape ``(n,)`` class ids, or ``(n, C)``.
        batch_size: Examples per compiled call.
        classification: Whether to compute accuracy.
    """

    def __init__(self, model, loss, x, y, batch_size: int = 1024, classification: bool = True):
        self.model = model
        self._loss = per_example_loss(loss)
        self._classification = classification
        self._n = len(x)
        self._batches = [(tf.constant(x[i : i + batch_size]), tf.constant(y[i : i + batch_size]))
                         for i in range(0, len(x), batch_size)]
        self._batch_fn = tf.function(self._batch_sums)

    def _batch_sums(self, x, y):
        outputs = self.model(x, training=False)
        loss_sum = tf.reduce_sum(tf.cast(self._loss(y, outputs), tf.float64))
        if not self._classification:
            return loss_sum, tf.constant(np.nan, tf.float64)
        labels = tf.argmax(y, axis=-1) if y.shape.rank == 2 else tf.cast(y, tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(outputs, axis=-1), labels), tf.float64)
        return loss_sum, tf.reduce_sum(correct)

    def __call__(self) -> tuple[float, float]:
        """Return ``(val_loss, val_accuracy)`` of the model's current weights."""
        sums = np.zeros(2)
        for x, y in self._batches:
            sums += [float(s) for s in self._batch_fn(x, y)]
        return float(sums[0] / self._n), float(sums[1] / self._n)


def replacement_values(params: list[Param], mode: str, seed: int) -> list[np.ndarray]:
    """Values written into replaced parameters.

    ``zero``: zeros. ``random``: N(0, (std(w) / 10)^2) drawn per variable, w
    the variable's current values (the original study, seed 003); each
    variable draws from its own generator ``default_rng([seed, crc32(name)])``,
    so its values do not depend on which other variables are prunable.

    Raises:
        ValueError: unknown ``mode``; the message lists the choices.
    """
    check_choice("replacement", mode, REPLACEMENTS)
    values = []
    for p in params:
        w = np.asarray(p.variable.numpy())
        scale = float(w.std()) / 10.0 if mode == "random" else 0.0
        rng = np.random.default_rng([seed, zlib.crc32(p.name.encode())])
        values.append((rng.standard_normal(w.shape) * scale).astype(w.dtype))
    return values


@tf.function(reduce_retracing=True)
def _assign_masked(variables, counts, ranks, segments, originals, replacements):
    """Assign ``where(rank < counts[segment], replacement, original)`` to every variable, on device."""
    for v, rank, segment, original, new in zip(variables, ranks, segments, originals, replacements):
        v.assign(tf.where(rank < tf.gather(counts, segment), new, original))


def sweep(params: list[Param], thresholder: Thresholder, replacement: list[np.ndarray],
          thresholds, evaluate: Evaluator) -> list[dict]:
    """Evaluate the model at every threshold, then restore the weights bit for bit.

    The masks of all thresholds come from one ranking: each element's item
    rank and segment are sent to the device once, and per threshold only the
    per-segment item counts change. Masking and assignment run in one
    compiled function, evaluation in another; nothing is cloned or compiled
    per threshold.

    Args:
        params: The prunable parameters, in the thresholder's order.
        thresholder: Ranking of the items of one (measure, aggregation, scope).
        replacement: Values for replaced elements, one array per parameter.
        thresholds: Fractions t in [0, 1].
        evaluate: Returns ``(val_loss, val_accuracy)`` of the live model.

    Returns:
        One dict per threshold: threshold, sparsity, n_replaced, val_loss,
        val_accuracy, sweep_seconds (time of this threshold's assign and evaluation).
    """
    variables = [p.variable for p in params]
    resources = [v.value for v in variables]  # the backing tf.Variable of each Keras variable
    originals = [np.array(v.numpy(), copy=True) for v in variables]
    ranks, segments = zip(*[(tf.constant(r), tf.constant(s)) for r, s in thresholder.element_ranks()])
    device_originals = [tf.constant(o) for o in originals]
    device_replacements = [tf.constant(r) for r in replacement]
    rows = []
    try:
        for t in thresholds:
            start = time.perf_counter()
            counts = tf.constant(thresholder.counts(t), tf.int64)
            _assign_masked(resources, counts, list(ranks), list(segments), device_originals, device_replacements)
            loss, accuracy = evaluate()
            n = thresholder.n_replaced(t)
            rows.append(dict(threshold=float(t), sparsity=n / thresholder.n_params, n_replaced=n,
                             val_loss=loss, val_accuracy=accuracy, sweep_seconds=time.perf_counter() - start))
    finally:
        for v, original in zip(variables, originals):
            v.assign(original)
    return rows
