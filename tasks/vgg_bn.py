"""A VGG-style plain CNN with BatchNorm, as a model of the ``cifar10`` and ``mnist`` tasks."""

from __future__ import annotations

import keras

from tasks import register_model

STAGES = ((32, 32), (64, 64), (128, 128))  # filters of the conv layers, stage by stage; 2x2 max pooling after each


def vgg_bn_model(input_shape: tuple[int, ...], num_classes: int, stages=STAGES, hidden: int = 128) -> keras.Model:
    """[Conv3x3-BN-ReLU] x 2 -> MaxPool, three times -> Flatten -> Dense(hidden)-BN-ReLU -> Dense(num_classes) logits.

    Convolutions pad ``same`` and have no bias (BatchNorm follows); the
    filters double per stage (32, 64, 128). For 10 classes: on 32x32x3,
    4x4x128 flattened and 551,146 trainable parameters; on MNIST's 28x28x1,
    3x3x128 and 435,882. BatchNormalization uses the Keras defaults (momentum
    0.99, epsilon 1e-3).

    Source: Simonyan and Zisserman 2015, "Very Deep Convolutional Networks
    for Large-Scale Image Recognition" (3x3 conv stacks, pooling between
    stages), with Ioffe and Szegedy's 2015 BatchNorm after every convolution,
    as in the VGG-BN networks of the pruning benchmarks (e.g. Li et al.
    2017, "Pruning Filters for Efficient ConvNets", VGG-16 on CIFAR-10), at
    a smaller width and depth.
    """
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    for stage, filters in enumerate(stages, start=1):
        for i, f in enumerate(filters, start=1):
            h = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{stage}_{i}")(h)
            h = keras.layers.BatchNormalization(name=f"bn{stage}_{i}")(h)
            h = keras.layers.ReLU(name=f"relu{stage}_{i}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(hidden, use_bias=False, name="fc1")(h)
    h = keras.layers.BatchNormalization(name="bn_fc1")(h)
    h = keras.layers.ReLU(name="relu_fc1")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="vgg_bn")


@register_model("cifar10", "vgg_bn", batch_size=128)
@register_model("mnist", "vgg_bn", batch_size=128)
def vgg_bn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The VGG-style CNN with BatchNorm of :func:`vgg_bn_model`; on ``cifar10`` and ``mnist``."""
    return vgg_bn_model(input_shape, num_classes)
