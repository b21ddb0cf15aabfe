"""Builder shared by the fully connected model plugins (a private module: not imported as a plugin)."""

from __future__ import annotations

import keras


def dense_stack(
    input_shape: tuple[int, ...], num_classes: int, widths: tuple[int, ...], dropout: float, name: str
) -> keras.Model:
    """Flatten -> per width [Dense(width, relu) (+ Dropout(dropout) when > 0)] -> Dense(num_classes) logits.

    Layers are named ``fc1 ... fcK`` and ``logits`` (dropout layers ``dropout1 ...``),
    so models differing only in dropout prune the same variables.

    Raises:
        ValueError: ``dropout`` outside [0, 1). Received: dropout=<value>.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1). Received: dropout={dropout!r}")
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(widths, start=1):
        h = keras.layers.Dense(width, activation="relu", name=f"fc{i}")(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"dropout{i}")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)
