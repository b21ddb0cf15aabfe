"""The task contract: data, Keras model builders, loss and training defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import keras
import numpy as np


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says which files to provide."""


@dataclass
class TaskData:
    """Training and validation arrays of one task.

    Attributes:
        x_train: Inputs, shape ``(n_train, *input_shape)``, float32.
        y_train: Integer class labels, shape ``(n_train,)``.
        x_val: Inputs, shape ``(n_val, *input_shape)``, float32.
        y_val: Integer class labels, shape ``(n_val,)``.
        info: Facts about where the data came from, written to the run's
            metadata (source, split, sizes).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    info: dict = field(default_factory=dict)


class Task:
    """Base class of a task; subclasses register with ``@register_task``.

    Models output logits and the loss is sparse softmax cross-entropy from
    logits unless a subclass overrides :meth:`loss`.

    Attributes:
        models: Model name to a builder ``f(input_shape, num_classes) -> Model``;
            the task's own models plus those added with ``@register_model``.
        model_defaults: Model name to training defaults given at registration
            (``batch_size``, ``epochs``, ``learning_rate``, ``augmentation``).
        augmentations: Name to a builder ``f(seed) -> keras layer`` of random
            training-input augmentation; ``"none"`` (no augmentation) always.
        default_model: Name of the model used when none is chosen.
        num_classes: Number of classes.
        batch_size, epochs, learning_rate: Training defaults.
        reads_data_dir: Whether :meth:`load` reads a ``data_dir``; a run refuses one given to a task that does not.
        input_shape: Shape of one example, when known before the data load (a
            ``--model-file`` is checked against it before anything runs); None: checked after the load.
    """

    name: ClassVar[str]
    models: ClassVar[dict[str, Callable[..., keras.Model]]] = {}
    model_defaults: ClassVar[dict[str, dict]] = {}
    augmentations: ClassVar[dict[str, Callable[[int], keras.layers.Layer] | None]] = {"none": None}
    default_model: ClassVar[str] = ""
    num_classes: ClassVar[int] = 10
    batch_size: ClassVar[int] = 32
    epochs: ClassVar[int] = 3
    learning_rate: ClassVar[float] = 1e-3
    reads_data_dir: ClassVar[bool] = True
    input_shape: ClassVar[tuple[int, ...] | None] = None

    def load(self, data_dir: str | None = None) -> TaskData:
        """Return the task's data; ``data_dir`` names a local copy."""
        raise NotImplementedError

    def build_model(self, model: str, input_shape: tuple[int, ...]) -> keras.Model:
        """Build the named model, uncompiled.

        Raises:
            ValueError: ``model`` is not one of the task's models.
        """
        if model not in self.models:
            raise ValueError(
                f"Unknown model {model!r} for task {self.name!r}; "
                f"available: {sorted(self.models)}"
            )
        return self.models[model](input_shape, self.num_classes)

    def training_defaults(self, model: str) -> dict:
        """``batch_size``, ``epochs``, ``learning_rate`` and ``augmentation``: the task's, then the model's."""
        ours = dict(batch_size=self.batch_size, epochs=self.epochs, learning_rate=self.learning_rate,
                    augmentation="none")
        return {**ours, **self.model_defaults.get(model, {})}

    def augmenter(self, name: str) -> Callable[[np.ndarray, int], np.ndarray] | None:
        """Return ``f(x, seed)`` applying augmentation ``name`` to training inputs; None for ``"none"``.

        ``f`` draws one random transformation per example from a fresh layer
        seeded by ``seed`` (so an epoch's inputs are a pure function of it)
        and returns float32 inputs of the same shape.

        Raises:
            ValueError: ``name`` is not one of the task's augmentations.
        """
        if name not in self.augmentations:
            raise ValueError(f"Unknown augmentation for task {self.name!r} {name!r}; "
                             f"available: {sorted(self.augmentations)}")
        build = self.augmentations[name]
        return None if build is None else lambda x, seed: _augment(build(seed), x)

    def loss(self) -> keras.losses.Loss:
        """The training and validation loss."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def optimizer_for(self, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
        """A fresh Adam optimizer; ``learning_rate`` None means the task's default."""
        return keras.optimizers.Adam(self.learning_rate if learning_rate is None else learning_rate)


def _augment(layer: keras.layers.Layer, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Apply a random augmentation layer in training mode, chunk by chunk."""
    parts = [keras.ops.convert_to_numpy(layer(x[i:i + chunk], training=True)) for i in range(0, len(x), chunk)]
    return np.concatenate(parts).astype(np.float32) if parts else x
