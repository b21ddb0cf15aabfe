"""The original study's MNIST network (seed 003), as a model of the ``mnist`` task."""

import keras

from tasks import register_model


@register_model("mnist", "seed003_cnn", batch_size=32, augmentation="seed003")
def seed003_cnn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Conv32-Conv32-BN-Pool-Conv64-Conv64-BN-Pool-Dense64-Drop-Dense64-Drop-Dense(num_classes) logits.

    Layer for layer the network of the original study's ``trial_script.py``
    (seed 003; hmcalister/Neural-Network-Weight-Importance-Measures): 3x3
    convolutions with relu and ``valid`` padding, BatchNormalization (Keras
    defaults: momentum 0.99, epsilon 1e-3) after each pair, 2x2 max pooling,
    Dense 64 relu with Dropout 0.2 twice, and a linear output (logits). On
    28x28x1 inputs: 26, 24, pool 12, 10, 8, pool 4, flatten 1024; 135,594
    trainable parameters for 10 classes.

    Training defaults (the original's): batch size 32 and the task's
    ``seed003`` augmentation (random zoom and rotation); Adam with learning
    rate 1e-3 is the task's default. Its loss, softmax cross-entropy from
    logits on one-hot labels, is the task's sparse cross-entropy on class ids.
    The original trained 25 epochs and measured after every fifth.
    """
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    for block, filters in enumerate((32, 64)):
        for i in range(2):
            h = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{2 * block + i + 1}")(h)
        h = keras.layers.BatchNormalization(name=f"bn{block + 1}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"pool{block + 1}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    for i in (1, 2):
        h = keras.layers.Dense(64, activation="relu", name=f"fc{i}")(h)
        h = keras.layers.Dropout(0.2, name=f"dropout{i}")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="seed003_cnn")
