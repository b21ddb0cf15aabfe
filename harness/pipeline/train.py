"""The training loop: one compiled step that also feeds training-time measures."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from harness.common import progress as progress_output
from harness.pipeline.seed import derived_seed
from measures import Measure, Param
from measures._base import StepBatch


class NonFiniteTraining(FloatingPointError):
    """A training loss or a trained parameter became NaN or infinite; the message names the first."""


AUGMENT_STREAM = 11  # derived_seed(seed, epoch, AUGMENT_STREAM) seeds an epoch's augmentation


class Trainer:
    """Trains a model one epoch at a time with a compiled step.

    Every step computes the gradient of the training loss (plus any
    regularisation penalty), applies the optimizer, and passes the gradient
    and the prunable parameters' values before and after the step to each
    training-time measure's ``observe``, inside the same ``tf.function``.
    Measures with ``needs_batch`` also get the step's examples and a way to
    split the gradient by example (``observe(..., batch=StepBatch)``); the
    tape is then persistent and keeps the per-example losses.
    Data order: epoch e uses the permutation ``default_rng([seed, e])``.
    With ``augment``, epoch e trains on ``augment(x, derived_seed(seed, e,
    AUGMENT_STREAM))``, a pure function of (seed, e), so a resumed run sees
    the same inputs.

    Args:
        model: A built Keras model.
        loss: The training loss.
        optimizer: A Keras optimizer; built here for the model's variables.
        params: The prunable parameters.
        hooks: Training-time measures, which observe every step; ``build(params)`` is called here.
            (In the harness a hook is only this; what runs between a sweep's
            mask and its evaluation is a recovery, :mod:`harness.thresholding.recovery`.)
        batch_size: Examples per step.
        seed: Seed of the data order.
        augment: ``f(x, seed) -> x'`` randomly augmenting training inputs, or None.
        jit_compile: Compile the step with XLA.
    """

    def __init__(self, model, loss, optimizer, params: list[Param], hooks: list[Measure],
                 batch_size: int, seed: int, augment=None, jit_compile: bool = False):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.variables = list(model.trainable_variables)
        positions = {id(v): i for i, v in enumerate(self.variables)}
        self._index = [positions[id(p.variable)] for p in params]
        self.hooks, self.batch_size, self.seed, self.augment = hooks, batch_size, seed, augment
        optimizer.build(self.variables)
        for hook in hooks:
            hook.build(params)
        self._batch_hooks = any(getattr(hook, "needs_batch", False) for hook in hooks)
        if self._batch_hooks and getattr(loss, "reduction", None) != "sum_over_batch_size":
            raise ValueError("Measures that split the gradient by example need a keras Loss averaged over the batch "
                             f"(reduction='sum_over_batch_size'). Received: loss={loss!r}")
        self._step = tf.function(self._train_step, jit_compile=jit_compile)

    def _prunable_values(self):
        return [tf.identity(self.variables[i]) for i in self._index]

    def _train_step(self, x, y):
        with tf.GradientTape(persistent=self._batch_hooks) as tape:
            outputs = self.model(x, training=True)
            loss = self.loss(y, outputs) + tf.add_n([0.0, *self.model.losses])
            batch = self._step_batch(tape, x, y, outputs) if self._batch_hooks else None
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables)]
        before = self._prunable_values() if self.hooks else []
        self.optimizer.apply_gradients(zip(grads, self.variables))
        if self.hooks:
            after = self._prunable_values()
            for hook in self.hooks:
                extra = {"batch": batch} if getattr(hook, "needs_batch", False) else {}
                hook.observe([grads[i] for i in self._index], before, after, **extra)
        return loss

    def _step_batch(self, tape, x, y, outputs) -> StepBatch:
        """Per-example losses ``(B,)`` (mean over any further axes), as the batch-mean loss averages them."""
        per_example = tf.cast(self.loss.call(y, outputs), tf.float32)
        per_example = tf.reshape(per_example, [tf.shape(per_example)[0], -1])
        return StepBatch(x, y, tape, tf.reduce_mean(per_example, axis=1), [self.variables[i] for i in self._index])

    def batches(self, n: int, epoch: int) -> list[np.ndarray]:
        """Index arrays of the batches of ``epoch`` (1-based), in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]

    def train_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int, progress: bool = True) -> float:
        """Train one epoch; return the mean training loss over its steps.

        Raises:
            NonFiniteTraining: a step's loss was NaN or infinite, or a trainable variable holds such
                values at the end of the epoch (a NaN input can give NaN gradients under a finite loss).
                Checked once, at the end of the epoch.
        """
        if self.augment is not None:
            x = self.augment(x, derived_seed(self.seed, epoch, AUGMENT_STREAM))
        losses, mean = [], RunningMean()
        bar = progress_output.bar(self.batches(len(x), epoch), desc=f"epoch {epoch}", unit="batch", enabled=progress,
                                  nested=True, leave=False)
        for index in bar:
            losses.append(self._step(x[index], y[index]))  # stays on the device: no sync per step
            if not bar.disable and mean.due():
                bar.set_postfix(loss=f"{mean.update(losses):.4f}", refresh=False)
        values = tf.stack(losses).numpy()  # one device sync per epoch
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise NonFiniteTraining(f"training loss {values[bad[0]]} at step {bad[0] + 1} of {len(values)}")
        finite = tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in self.variables]).numpy()
        if not finite.all():
            name = getattr(self.variables[int(np.argmin(finite))], "path", "?")
            raise NonFiniteTraining(f"parameter {name} holds non-finite values (the training losses were finite)")
        return float(values.mean(dtype=np.float64))


class RunningMean:
    """The mean of an epoch's training losses so far, brought from the device at most every REFRESH_SECONDS.

    Each update sums only the losses that arrived since the last one (one device sync), so the
    bar shows the mean over every step of the epoch so far, not one sampled batch.
    """

    def __init__(self):
        self.total, self.count, self.last = 0.0, 0, time.monotonic()

    def due(self) -> bool:
        """Whether REFRESH_SECONDS have passed since the last update."""
        return time.monotonic() - self.last >= progress_output.REFRESH_SECONDS

    def update(self, losses: list) -> float:
        """Add ``losses[count:]`` (scalar tensors) and return the mean of all of them."""
        if len(losses) > self.count:
            self.total += float(tf.add_n(losses[self.count:]))
            self.count = len(losses)
        self.last = time.monotonic()
        return self.total / max(self.count, 1)
