"""Recovery before evaluation: BatchNorm recalibration or a few fine-tuning steps at every threshold.

A recovery runs between the assignment of a threshold's mask and its
evaluation (the ``recovery`` of :func:`harness.thresholding.sweep.sweep`, a
:class:`SweepRecovery`; the sweep then evaluates threshold by threshold and
restores every weight of the model afterwards). "Recovery" is this only;
training-time measures observe training steps (:class:`harness.pipeline.train.Trainer`)
and are not recoveries.
The CSV's ``recovery`` column records it:

- ``none``: evaluate at once (the fast sweep methods apply).
- ``bn`` (``bn:batches=B``, default B = 20): recompute the moving mean and
  variance of every BatchNormalization layer from B training batches of the
  run's batch size, drawn once per run (:data:`BN_STREAM`), unaugmented, with
  the masked weights. The model runs in inference mode except its
  BatchNormalization layers, which run in training mode (Dropout and other
  noise layers stay inactive). For batch b, Keras computes the batch mean
  ``mu_b`` and the (biased) batch variance ``var_b`` of each layer's input over
  every axis but the channel axis, from inputs normalised upstream by batch
  statistics, exactly as in training. The new moving statistics are their
  means over the batches, ``(1/B) sum_b mu_b`` and ``(1/B) sum_b var_b``: Keras'
  own moving-average update ``m <- momentum * m + (1 - momentum) * s`` with
  momentum ``(b - 1) / b`` at batch b (a cumulative average, as PyTorch's
  ``momentum=None``), so the initial statistics do not count. On a model
  without BatchNormalization ``bn`` would change nothing: a run skips it
  with a note (see ``harness.pipeline.recoveries.kept_recoveries``). Source: Li et
  al. 2020, "EagleEye: Fast sub-net evaluation for efficient neural network
  pruning", ECCV (adaptive BatchNorm).
- ``finetune:steps=k``: k optimizer steps on training batches of the run's
  batch size (augmented as in training), from the trained optimizer's state
  at the sweep, with the mask held fixed: after every step the replaced
  elements are written again (zero, or their random replacement values), so
  they stay replaced whatever the optimizer's momentum does. The batches of
  epoch e are drawn from ``default_rng([seed, e, FINETUNE_STREAM])``, the same
  for every threshold and measure of the epoch. Dropout is active (these are
  training steps); training-time measures do not observe them. Afterwards
  the optimizer's variables and the model's other variables (dropout seed
  states) are restored bit for bit here, the weights by the sweep. One
  compiled loop of k steps is reused for every threshold and sweep.

Cost: ``finetune`` multiplies a sweep's cost by about ``1 + k * step / evaluation``
(printed by ``benchmarks/recovery.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from harness.pipeline.seed import derived_seed
from harness.thresholding.masks import Schedule
from harness.thresholding.recovery_spec import OPTIONS, RECOVERIES, Recovery, parse_recovery  # noqa: F401 - re-exported
from measures import Param

BN_STREAM = 17  # derived_seed(seed, BN_STREAM) draws a run's recalibration batches
FINETUNE_STREAM = 19  # default_rng([seed, epoch, FINETUNE_STREAM]) orders an epoch's fine-tuning batches


class SweepRecovery(Protocol):
    """A recovery as :func:`harness.thresholding.sweep.sweep` calls it: ``recovery(t)`` once per threshold t.

    Called after t's mask is assigned and before the evaluation. It may change
    any variable of the model; the sweep writes the evaluator's
    ``recovery_variables`` back afterwards. Implemented by
    :class:`BatchNormRecalibration` and by the function
    :meth:`FineTuning.recovery` returns.
    """

    def __call__(self, t: float) -> None:
        """Recover the live model at threshold ``t``, whose mask is assigned."""


def batch_norm_layers(model: keras.Layer) -> list[keras.layers.BatchNormalization]:
    """The BatchNormalization layers of ``model``, nested models included, in order."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        found += batch_norm_layers(layer)
    return found


@contextlib.contextmanager
def _batch_statistics(layers: list[keras.layers.BatchNormalization]):
    """While tracing: these layers run in training mode whatever the model's mode, with momentum 0.

    With momentum 0 Keras' update sets each moving statistic to the batch's.
    """
    saved = [(layer, layer.momentum) for layer in layers]
    for layer in layers:
        call = layer.call
        layer.call = lambda inputs, training=None, mask=None, call=call: call(inputs, training=True, mask=mask)
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in saved:
            del layer.call  # the instance attribute; the class's method shows again
            layer.momentum = momentum


class BatchNormRecalibration:
    """The ``bn`` recovery of a model (a :class:`SweepRecovery`): new moving statistics from fixed training batches.

    See the module docstring for the formula.

    Args:
        model: The live model.
        x: Training inputs, shape ``(n, *input_shape)``.
        batch_size: Examples per batch.
        batches: Number of batches B (at most ``n // batch_size``; at least one, of at most n examples).
        seed: The run's seed; the examples are drawn without replacement with ``derived_seed(seed, BN_STREAM)``.
    """

    def __init__(self, model, x: np.ndarray, batch_size: int, batches: int, seed: int):
        self.model, self.layers = model, batch_norm_layers(model)
        size = min(batch_size, len(x))
        count = max(1, min(batches, len(x) // size))
        index = np.random.default_rng(derived_seed(seed, BN_STREAM)).choice(len(x), count * size, replace=False)
        self.batches = tf.constant(x[np.sort(index)].reshape(count, size, *x.shape[1:]))
        self._step = None

    def _statistics(self) -> Callable:
        """One compiled forward pass of a batch returning every layer's batch ``[mean, variance]`` (traced once)."""
        def forward(x):
            self.model(x, training=False)
            return [tf.identity(v) for layer in self.layers for v in (layer.moving_mean, layer.moving_variance)]

        with _batch_statistics(self.layers):
            return tf.function(forward, autograph=False).get_concrete_function(
                tf.TensorSpec(self.batches.shape[1:], self.batches.dtype))

    def __call__(self, t: float | None = None) -> None:
        """Recompute the moving statistics of every layer from the batches (``t`` is ignored)."""
        if not self.layers:
            return
        self._step = self._step or self._statistics()
        totals = None
        for b in range(self.batches.shape[0]):
            values = self._step(self.batches[b])
            totals = values if totals is None else [a + v for a, v in zip(totals, values)]
        moving = [v for layer in self.layers for v in (layer.moving_mean, layer.moving_variance)]
        for variable, total in zip(moving, totals):
            variable.assign(total / self.batches.shape[0])


class FineTuning:
    """The ``finetune`` recovery: k optimizer steps with the mask held fixed, then the optimizer restored.

    Args:
        model: The live model.
        loss: The training loss (plus the model's regularisation losses, as in training).
        optimizer: The run's optimizer, built for ``model.trainable_variables``.
        params: The prunable parameters.
        x: Training inputs, shape ``(n, *input_shape)``.
        y: Training targets, shape ``(n,)`` or ``(n, C)``.
        batch_size: Examples per step (at most n).
        seed: The run's seed (data order, augmentation).
        augment: The task's ``f(x, seed)`` training augmentation, or None.
    """

    def __init__(self, model, loss, optimizer, params: list[Param], x: np.ndarray, y: np.ndarray, batch_size: int,
                 seed: int, augment=None):
        self.model, self.loss, self.optimizer, self.params = model, loss, optimizer, params
        self.x, self.y, self.batch_size, self.seed, self.augment = x, y, min(batch_size, len(x)), seed, augment
        self.variables = list(model.trainable_variables)
        self.masks = [tf.Variable(tf.zeros(p.shape, tf.bool), trainable=False) for p in params]
        self.values = [tf.Variable(tf.zeros(p.shape, p.variable.dtype), trainable=False) for p in params]
        weights = {id(v) for v in model.weights}
        self.others = [v for v in model.variables if id(v) not in weights]  # seed states of dropout layers
        self.data: tuple[tf.Tensor, tf.Tensor] | None = None
        signature = [tf.TensorSpec([None, self.batch_size, *x.shape[1:]], tf.as_dtype(x.dtype)),
                     tf.TensorSpec([None, self.batch_size, *y.shape[1:]], tf.as_dtype(y.dtype))]
        self._steps = tf.function(self._train_steps, input_signature=signature)

    def _train_steps(self, xs, ys):
        """One step per batch of ``xs`` (``(k, batch, ...)``), in order, in one graph loop."""
        for b in tf.range(tf.shape(xs)[0]):
            self._train_step(xs[b], ys[b])
        return tf.constant(0)

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss(y, self.model(x, training=True)) + tf.add_n([0.0, *self.model.losses])
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables)]
        self.optimizer.apply_gradients(zip(grads, self.variables))
        for p, mask, value in zip(self.params, self.masks, self.values):
            p.variable.assign(tf.where(mask, value, p.variable))
        return loss

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Draw the ``steps`` fine-tuning batches of ``epoch`` in ``default_rng([seed, epoch, FINETUNE_STREAM])`` order."""
        rng = np.random.default_rng([self.seed, epoch, FINETUNE_STREAM])
        need = steps * self.batch_size
        order = np.concatenate([rng.permutation(len(self.x)) for _ in range(-(-need // len(self.x)))])[:need]
        x = self.x[order]
        if self.augment is not None:
            x = self.augment(x, derived_seed(self.seed, epoch, FINETUNE_STREAM))
        y, shape = self.y[order], (steps, self.batch_size)
        self.data = (tf.constant(x.reshape(*shape, *x.shape[1:])), tf.constant(y.reshape(*shape, *y.shape[1:])))

    def recovery(self, steps: int, params: list[Param], thresholder, replacement: list[np.ndarray],
                 thresholds) -> SweepRecovery:
        """The recovery of one sweep: at threshold t, ``steps`` steps under t's mask, then the optimizer restored.

        Args:
            steps: Optimizer steps per threshold (at most the batches drawn by :meth:`start_epoch`).
            params: The prunable parameters (the ones given to the constructor).
            thresholder: The sweep's thresholder (a Thresholder or a control).
            replacement: The sweep's replacement values, one array per parameter.
            thresholds: The sweep's thresholds.

        Raises:
            ValueError: no batches drawn, or fewer than ``steps``.
        """
        if self.data is None or self.data[0].shape[0] < steps:
            raise ValueError(f"finetune needs {steps} batches drawn by start_epoch first")
        schedule = Schedule(params, thresholder, replacement, thresholds)
        for value, r in zip(self.values, replacement):
            value.assign(r)
        saved = [np.array(v.numpy(), copy=True) for v in [*self.optimizer.variables, *self.others]]

        def recover(t: float) -> None:
            k = int(np.flatnonzero(schedule.thresholds == t)[0])
            for mask, s in zip(self.masks, schedule.steps):
                mask.assign(s <= k)
            try:
                self._steps(self.data[0][:steps], self.data[1][:steps])
            finally:
                for v, value in zip([*self.optimizer.variables, *self.others], saved):
                    v.assign(value)

        return recover
