"""Seed 004's 4-layer fully connected MNIST network (about 50K weights), as a model of the ``mnist`` task."""

import keras

from tasks import register_model
from tasks._dense import dense_stack

WIDTHS = (60, 32, 32)  # hidden widths: 50,304 kernel weights with 784 inputs and 10 classes


@register_model("mnist", "seed004_fc")
def seed004_fc(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Flatten -> Dense(60, relu) -> Dense(32, relu) -> Dense(32, relu) -> Dense(num_classes) logits.

    Seed 004 prunes "a fairly simple 4-layer fully connected model" of "about
    50K" weights on MNIST ("1 percentile = 500 weights approx"). Its widths and
    activation are not stated; 784-60-32-32-10 with relu has 50,304 kernel
    weights (47,040 + 1,920 + 1,024 + 320) and 134 biases for 10 classes.
    Training defaults are the task's (Adam 1e-3, batch size 64).

    Source: seed 004 (OBD against magnitude, layer-wise and all-layer pruning).
    """
    return dense_stack(input_shape, num_classes, WIDTHS, dropout=0.0, name="seed004_fc")
