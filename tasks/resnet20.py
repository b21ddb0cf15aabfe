"""ResNet-20 (He et al. 2016, the CIFAR variant), as a model of the ``cifar10`` and ``mnist`` tasks."""

from __future__ import annotations

import keras

from tasks import register_model

STAGES = (1, 2, 4)  # filters of the three stages, in units of the base width
BLOCKS = 3  # basic blocks per stage: 6 * BLOCKS + 2 = 20 weighted layers


def _conv_bn(h, filters: int, strides: int, name: str, relu: bool = True, size: int = 3):
    """Conv (no bias, He-normal) -> BatchNorm (-> ReLU)."""
    h = keras.layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False,
                            kernel_initializer="he_normal", name=f"{name}_conv")(h)
    h = keras.layers.BatchNormalization(name=f"{name}_bn")(h)
    return keras.layers.ReLU(name=f"{name}_relu")(h) if relu else h


def _block(h, filters: int, strides: int, name: str, shortcut: str):
    """Basic block: two 3x3 conv-BN, plus the shortcut, then ReLU."""
    out = _conv_bn(h, filters, strides, f"{name}_a")
    out = _conv_bn(out, filters, 1, f"{name}_b", relu=False)
    if strides != 1 or h.shape[-1] != filters:
        if shortcut == "B":
            h = _conv_bn(h, filters, strides, f"{name}_proj", relu=False, size=1)
        else:  # option A: subsample and pad channels with zeros; no parameters
            h = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(h)
            pad = filters - h.shape[-1]
            h = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (pad // 2, pad - pad // 2)), name=f"{name}_pad")(
                keras.layers.Reshape((*h.shape[1:], 1), name=f"{name}_expand")(h))
            h = keras.layers.Reshape((*h.shape[1:3], filters), name=f"{name}_squeeze")(h)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([out, h]))


def resnet20_model(input_shape: tuple[int, ...], num_classes: int, width: int = 16, shortcut: str = "B",
                   blocks: int = BLOCKS) -> keras.Model:
    """ResNet-20 for 32x32 (or 28x28x1) images, logits out.

    Conv3x3(16)-BN-ReLU; three stages of ``blocks`` basic blocks with 16,
    32 and 64 filters (``width`` times 1, 2, 4), the first block of stages 2
    and 3 striding by 2; global average pooling; Dense(num_classes) logits.
    A basic block is conv3x3-BN-ReLU-conv3x3-BN, plus its input, then ReLU.
    Where the shape changes the shortcut is option B of the paper (1x1 conv
    with stride 2, then BN) or, with ``shortcut="A"``, option A (subsampling
    and zero channels; no parameters). Convolutions have no bias (BN
    follows). For 10 classes on 32x32x3: 272,474 trainable parameters with
    option B, 269,722 with option A (the paper's 0.27M; B adds the two 1x1
    convolutions, 512 and 2,048 weights, and their BN).
    On MNIST's 28x28 inputs the stages are 28, 14 and 7 pixels wide.

    Source: He, Zhang, Ren, Sun 2016, "Deep Residual Learning for Image
    Recognition", section 4.2 (CIFAR-10, n = 3).
    """
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B'. Received: shortcut={shortcut!r}")
    inputs = keras.Input(input_shape, name="image")
    h = _conv_bn(inputs, width, 1, "stem")
    for stage, factor in enumerate(STAGES, start=1):
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            h = _block(h, width * factor, strides, f"s{stage}b{block}", shortcut)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="resnet20")


@register_model("cifar10", "resnet20", batch_size=128, learning_rate=1e-3)
@register_model("mnist", "resnet20", batch_size=128, learning_rate=1e-3)
def resnet20(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """ResNet-20 with option-B shortcuts (see :func:`resnet20_model`); on ``cifar10`` and ``mnist``."""
    return resnet20_model(input_shape, num_classes)
