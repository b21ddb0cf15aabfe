"""The training loop: one compiled step that also feeds training-time measures."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from measures import Measure, Param


class Trainer:
    """Trains a model one epoch at a time with a compiled step.

    Every step computes the gradient of the training loss (plus any
    regularisation penalty), applies the optimizer, and passes the gradient
    and the prunable parameters' values before and after the step to each
    training-time measure's ``observe``, inside the same ``tf.function``.
    Data order: epoch e uses the permutation ``default_rng([seed, e])``.

    Args:
        model: A built Keras model.
        loss: The training loss.
        optimizer: A Keras optimizer; built here for the model's variables.
        params: The prunable parameters.
        hooks: Training-time measures; ``build(params)`` is called here.
        batch_size: Examples per step.
        seed: Seed of the data order.
        jit_compile: Compile the step with XLA.
    """

    def __init__(self, model, loss, optimizer, params: list[Param], hooks: list[Measure],
                 batch_size: int, seed: int, jit_compile: bool = False):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.variables = list(model.trainable_variables)
        positions = {id(v): i for i, v in enumerate(self.variables)}
        self._index = [positions[id(p.variable)] for p in params]
        self.hooks, self.batch_size, self.seed = hooks, batch_size, seed
        optimizer.build(self.variables)
        for hook in hooks:
            hook.build(params)
        self._step = tf.function(self._train_step, jit_compile=jit_compile)

    def _prunable_values(self):
        return [tf.identity(self.variables[i]) for i in self._index]

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            loss = self.loss(y, outputs) + tf.add_n([0.0, *self.model.losses])
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables)]
        before = self._prunable_values() if self.hooks else []
        self.optimizer.apply_gradients(zip(grads, self.variables))
        if self.hooks:
            after = self._prunable_values()
            for hook in self.hooks:
                hook.observe([grads[i] for i in self._index], before, after)
        return loss

    def batches(self, n: int, epoch: int) -> list[np.ndarray]:
        """Index arrays of the batches of ``epoch`` (1-based), in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]

    def train_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int, progress: bool = True) -> float:
        """Train one epoch; return the mean training loss over its steps."""
        losses = []
        bar = tqdm(self.batches(len(x), epoch), desc=f"epoch {epoch}", disable=not progress, leave=False)
        for step, index in enumerate(bar):
            losses.append(self._step(x[index], y[index]))  # stays on the device: no sync per step
            if progress and step % 50 == 0:
                bar.set_postfix(loss=f"{float(losses[-1]):.4f}", refresh=False)
        return float(tf.reduce_mean(tf.stack(losses)))  # one device sync per epoch
