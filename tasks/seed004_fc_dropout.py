"""Seed 004's fully connected MNIST network with dropout (keep probability 0.8), as a model of ``mnist``."""

import keras

from tasks import register_model
from tasks._dense import dense_stack
from tasks.seed004_fc import WIDTHS

DROPOUT_RATE = 0.2  # seed 004: "dropout (keep probability = 0.8)"


@register_model("mnist", "seed004_fc_dropout")
def seed004_fc_dropout(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """``seed004_fc`` with Dropout(0.2) after each of its three hidden layers.

    Flatten -> [Dense(60, relu), Dropout] -> [Dense(32, relu), Dropout] ->
    [Dense(32, relu), Dropout] -> Dense(num_classes) logits: the same 50,304
    kernel weights and layer names as ``seed004_fc``, so the two prune the
    same items. Dropout is active in training only; sweeps evaluate the model
    in inference mode. Keep probability 0.8 is dropout rate 0.2.

    Source: seed 004 ("the same model with dropout (keep probability = 0.8)").
    """
    return dense_stack(input_shape, num_classes, WIDTHS, dropout=DROPOUT_RATE, name="seed004_fc_dropout")
