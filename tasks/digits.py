"""scikit-learn's bundled 8x8 handwritten digits: a task that needs no download."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.datasets import load_digits

from tasks import Task, TaskData, register_task
from tasks._utils import SPLIT_SEED, stratified_split


def digits_mlp(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Input(64) -> Dense(32, relu) -> Dense(16, relu) -> Dense(num_classes) logits."""
    inputs = keras.Input(input_shape, name="pixels")
    h = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="fc2")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="digits_mlp")


@register_task("digits")
class Digits(Task):
    """1,797 8x8 grey digit images, 10 classes, flattened to 64 inputs in [0, 1].

    The split (80/20, stratified) uses a fixed seed, so every run sees the
    same 1,437 training and 360 validation images whatever its own seed.
    """

    models = {"mlp": digits_mlp}
    default_model = "mlp"
    num_classes = 10
    batch_size = 32
    epochs = 5
    learning_rate = 1e-2
    reads_data_dir = False  # the data ship with scikit-learn
    input_shape = (64,)

    def load(self, data_dir: str | None = None) -> TaskData:
        """Return the split digits; ``data_dir`` is ignored (the data ship with scikit-learn; a run refuses one).

        Returns:
            x of shape ``(n, 64)`` float32 in [0, 1] (pixel counts 0..16 divided
            by 16), y of shape ``(n,)`` int64.
        """
        bunch = load_digits()
        x = (bunch.data / 16.0).astype(np.float32)
        x_train, y_train, x_val, y_val = stratified_split(x, bunch.target.astype(np.int64), 0.2)
        info = {
            "source": "sklearn.datasets.load_digits (bundled with scikit-learn)",
            "n_train": len(y_train),
            "n_val": len(y_val),
            "split": f"train_test_split(test_size=0.2, stratified, random_state={SPLIT_SEED}); fixed, "
            "independent of the run seed",
        }
        return TaskData(x_train, y_train, x_val, y_val, info)
