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
        models: Model name to a builder ``f(input_shape, num_classes) -> Model``.
        default_model: Name of the model used when none is chosen.
        num_classes: Number of classes.
        batch_size, epochs, learning_rate: Training defaults.
        reads_data_dir: Whether :meth:`load` reads a ``data_dir``; a run refuses one given to a task that does not.
    """

    name: ClassVar[str]
    models: ClassVar[dict[str, Callable[..., keras.Model]]] = {}
    default_model: ClassVar[str] = ""
    num_classes: ClassVar[int] = 10
    batch_size: ClassVar[int] = 32
    epochs: ClassVar[int] = 3
    learning_rate: ClassVar[float] = 1e-3
    reads_data_dir: ClassVar[bool] = True

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

    def loss(self) -> keras.losses.Loss:
        """The training and validation loss."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def optimizer_for(self, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
        """A fresh Adam optimizer; ``learning_rate`` None means the task's default."""
        return keras.optimizers.Adam(self.learning_rate if learning_rate is None else learning_rate)
