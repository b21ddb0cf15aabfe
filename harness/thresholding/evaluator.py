"""The compiled evaluator of the live model: validation loss, accuracy and per-class metrics in one pass.

:class:`Evaluator` is the :class:`~harness.thresholding.evaluation.SweepEvaluator` every sweep method of
:func:`harness.thresholding.sweep.sweep` runs on.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from harness.thresholding.masks import MaskBuffers, Schedule
from harness.thresholding.structure import Structure, removal_counts
from measures import Param


def per_example_loss(loss: keras.losses.Loss) -> keras.losses.Loss:
    """A copy of a Keras loss object that returns one value per example."""
    config = dict(loss.get_config(), reduction=None)
    return type(loss).from_config(config)


class Evaluator:
    """Validation loss and accuracy of a model through one compiled function per evaluation.

    The loss is the mean over examples of the task's per-example loss (data
    loss only; regularisation penalties are not added). Accuracy is the
    fraction of examples whose arg-max output matches the label, or NaN when
    ``classification`` is False. Both come from per-example columns
    (:meth:`per_example`) summed over the validation set; further columns
    flow through every sweep method. With ``classes`` (C) the columns also
    hold each class's sums of losses and of correct predictions (the
    per-example loss and correctness times the one-hot label), so one pass
    gives the per-class metrics too (:meth:`class_metrics`). It is a
    :class:`~harness.thresholding.evaluation.SweepEvaluator` with ``compiles`` True: every
    sweep method runs on it.

    Args:
        model: The live model; evaluated in inference mode.
        loss: The task's Keras loss.
        x: Validation inputs, shape ``(n, *input_shape)``.
        y: Validation targets, shape ``(n,)`` class ids, or ``(n, C)``.
        batch_size: Examples per forward pass.
        classification: Whether to compute accuracy.
        jit_compile: Compile the evaluation with XLA.
        classes: Number of classes C for per-class columns; None for none.

    Raises:
        ValueError: ``classes`` without ``classification``, or a label outside ``[0, classes)``.
    """

    compiles = True  # SweepEvaluator: sweeps compile assignment and evaluation with this object's API

    def __init__(self, model, loss, x, y, batch_size: int = 1024, classification: bool = True,
                 jit_compile: bool = False, classes: int | None = None):
        self.model, self.batch_size, self.jit_compile = model, batch_size, jit_compile
        self._loss = per_example_loss(loss)
        self._classification = classification
        self.classes = classes
        self.n_columns = 2 + 2 * (classes or 0)  # of per_example
        self.n = len(x)
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.class_counts = _class_counts(y, classes, classification) if classes else None
        self._compiled: dict[str, Callable] = {}
        self.recent: dict[bytes, list] = {}  # sweep key (see _evaluated_once) -> (loss, accuracy, per-class) per threshold
        self.evaluations = 0  # thresholds evaluated by sweeps (not copied)
        self._structure: Structure | None = None

    @property
    def structure(self) -> Structure:
        """The model's :class:`~harness.thresholding.structure.Structure`, built on first use."""
        if self._structure is None:
            self._structure = Structure(self.model)
        return self._structure

    def per_example(self, y, outputs) -> tf.Tensor:
        """Per-example columns, float64: ``[loss, correct]``, shape ``(n, 2)``.

        With ``classes`` C, then ``loss * onehot`` and ``correct * onehot``:
        shape ``(n, 2 + 2C)``, whose sums are each class's summed loss and count of correct predictions.
        """
        loss = tf.cast(self._loss(y, outputs), tf.float64)
        if not self._classification:
            return tf.stack([loss, tf.fill(tf.shape(loss), tf.constant(np.nan, tf.float64))], axis=1)
        labels = tf.argmax(y, axis=-1) if y.shape.rank == 2 else tf.cast(y, tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(outputs, axis=-1), labels), tf.float64)
        columns = tf.stack([loss, correct], axis=1)
        if not self.classes:
            return columns
        onehot = tf.one_hot(labels, self.classes, dtype=tf.float64)
        return tf.concat([columns, loss[:, None] * onehot, correct[:, None] * onehot], axis=1)

    def compile(self, forward: Callable, signature: list | None = None, before: Callable | None = None,
                prepare: Callable | None = None, static_shapes: bool = True) -> Callable:
        """One compiled function ``f(*args)`` returning the column sums over the validation set.

        Each batch's outputs are ``forward(x_batch)``, or ``forward(x_batch,
        prepare(*args))`` with ``prepare`` (weights built once per call, say);
        ``before(*args)`` runs first (assignments to the variables, say), in
        the same call. ``signature`` (``tf.TensorSpec`` per argument) makes it
        one concrete function, traced once and called without dispatch. XLA
        (``jit_compile``) applies only with ``static_shapes``: it would
        compile again for every shape.
        """
        def totals(*args):
            if before is not None:
                before(*args)
            extra = (prepare(*args),) if prepare is not None else ()
            sums = []
            for i in range(0, self.n, self.batch_size):
                outputs = forward(self.x[i : i + self.batch_size], *extra)
                sums.append(tf.reduce_sum(self.per_example(self.y[i : i + self.batch_size], outputs), axis=0))
            return tf.add_n(sums)

        jit = self.jit_compile and static_shapes
        function = tf.function(totals, jit_compile=jit, input_signature=signature or [], autograph=False)
        return function.get_concrete_function()

    def compile_sets(self, forward: Callable, k: int, chunk: int) -> Callable:
        """Like :meth:`compile` for ``forward(x_chunk, *args)`` giving ``(k, n, ...)`` outputs; returns ``(k, columns)``."""
        def totals(*args):
            sums = tf.zeros((k, self.n_columns), tf.float64)
            for i in tf.range(0, self.n, chunk):
                x, y = self.x[i : i + chunk], self.y[i : i + chunk]
                outputs = forward(x, *args)
                flat = tf.reshape(outputs, tf.concat([[-1], tf.shape(outputs)[2:]], 0))
                columns = self.per_example(tf.tile(y, [k] + [1] * (len(y.shape) - 1)), flat)
                sums += tf.reduce_sum(tf.reshape(columns, [k, -1, self.n_columns]), axis=1)
            return sums

        return tf.function(totals, reduce_retracing=True)  # no XLA: the last chunk's shape differs

    def compiled(self, key, make: Callable[[], object]):
        """An object (a compiled function, buffers) kept for the evaluator's lifetime under ``key``, made once."""
        if key not in self._compiled:
            self._compiled[key] = make()
        return self._compiled[key]

    def summarize(self, totals) -> tuple[float, float]:
        """``(val_loss, val_accuracy)`` from column sums."""
        totals = np.asarray(totals, np.float64)
        return float(totals[0] / self.n), float(totals[1] / self.n)

    def class_metrics(self, totals) -> list[dict] | None:
        """Per-class metrics from column sums; None without ``classes``.

        One dict per class c: ``class``, ``val_loss`` (mean loss over the n_c validation examples of c),
        ``val_accuracy`` (fraction of them correct) and ``n_examples`` (n_c); NaN where n_c = 0.
        """
        if not self.classes:
            return None
        totals, n, c = np.asarray(totals, np.float64), self.class_counts, self.classes
        with np.errstate(invalid="ignore", divide="ignore"):
            loss, accuracy = totals[2 : 2 + c] / n, totals[2 + c : 2 + 2 * c] / n
        return [dict(zip(("class", "val_loss", "val_accuracy", "n_examples"), (k, float(a), float(b), int(m))))
                for k, (a, b, m) in enumerate(zip(loss, accuracy, n))]

    def totals(self) -> np.ndarray:
        """Column sums (:meth:`per_example`) over the validation set for the model's current weights."""
        return self.compiled("plain", lambda: self.compile(lambda x: self.model(x, training=False)))().numpy()

    def __call__(self) -> tuple[float, float]:
        """Return ``(val_loss, val_accuracy)`` of the model's current weights."""
        return self.summarize(self.totals())

    def evaluate_now(self) -> tuple[float, float, list[dict] | None]:
        """``(val_loss, val_accuracy, per-class metrics or None)`` of the model's current weights."""
        totals = self.totals()
        return (*self.summarize(totals), self.class_metrics(totals))

    def fast_methods_unavailable(self, params: list[Param]) -> str:
        """Why ``shrunk`` and ``batched`` cannot run (:func:`unchained`); ``""`` when they can."""
        return unchained(self.structure, params)

    def recovery_variables(self, params: list[Param]) -> list:
        """Every weight of the model (a recovery may change any of them)."""
        return self.model.weights

    def mask_buffers(self, params: list[Param]) -> MaskBuffers:
        """The buffers of ``params``, made once and kept across sweeps."""
        return self.compiled(("buffers", *(p.name for p in params)), lambda: MaskBuffers(params))

    def removal_costs(self, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """``(params_remaining, flops)`` per threshold (:func:`harness.thresholding.structure.removal_counts`)."""
        return removal_counts(self.structure, schedule.zero_steps, schedule.k)


def _class_counts(y, classes: int, classification: bool) -> np.ndarray:
    """Validation examples per class, shape ``(classes,)``; refuses labels outside ``[0, classes)``."""
    if not classification:
        raise ValueError("per-class evaluation needs a classification task (accuracy per class).")
    y = np.asarray(y)
    labels = y.argmax(-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}) for per-class evaluation. "
                         f"Received: labels in [{labels.min()}, {labels.max()}]")
    return np.bincount(labels, minlength=classes)


def unchained(structure: Structure, params: list[Param]) -> str:
    """Why a model's structure keeps ``params`` from ``shrunk`` and ``batched``: not a chain, or parameters outside it."""
    if structure.chain is None:
        return f"model {structure.model.name!r} is not a chain of Dense, convolution, pooling and element-wise layers"
    if any(structure.link_of(p.variable) is None for p in params):
        return "some prunable parameters are not Dense or convolution kernels or biases"
    return ""
