"""A small vision transformer, as a model of the ``mnist`` and ``digits`` tasks."""

from __future__ import annotations

import math

import keras

from tasks import register_model


@keras.saving.register_keras_serializable(package="tasks")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector to each token: ``(B, T, D) + p``, ``p`` of shape ``(T, D)``, initialised N(0, 0.02)."""

    def build(self, input_shape):
        """Create ``p`` for the input's ``(T, D)``."""
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.positions = self.add_weight(shape=tuple(input_shape[1:]), initializer=init, name="positions")

    def call(self, x):
        """Return ``x + p``."""
        return x + self.positions


def _block(h, heads: int, dim: int, mlp: int, name: str):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) with a GELU hidden layer."""
    a = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(h)
    a = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"{name}_attention")(a, a)
    h = keras.layers.Add(name=f"{name}_add1")([h, a])
    m = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(h)
    m = keras.layers.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(m)
    m = keras.layers.Dense(dim, name=f"{name}_mlp2")(m)
    return keras.layers.Add(name=f"{name}_add2")([h, m])


def vit_model(input_shape: tuple[int, ...], num_classes: int, patch: int | None = None, dim: int = 32,
              depth: int = 2, heads: int = 4, mlp: int = 64) -> keras.Model:
    """Vision transformer: patches -> ``depth`` pre-norm blocks -> mean over tokens -> LN -> Dense logits.

    Inputs are images ``(H, W, C)`` or flat vectors of a square grey image
    (the 64 pixels of ``digits`` are 8x8x1). A ``patch`` x ``patch``
    convolution with stride ``patch`` embeds each patch in ``dim``
    dimensions (default patch: 7 on 28x28, 2 on 8x8, so 16 tokens), a
    learned position embedding is added, then each block is
    ``x + MHA(LN(x))`` (``heads`` heads of ``dim / heads`` dimensions,
    ``keras.layers.MultiHeadAttention``) and ``x + MLP(LN(x))`` (Dense
    ``mlp``, GELU, Dense ``dim``). No class token: the tokens are averaged.
    With the defaults, for 10 classes: 19,594 trainable parameters on 28x28x1, 18,154 on digits.

    Prunable kernels (``prunable="kernels"``): the patch embedding
    (Conv2D), the MLP and output Dense layers, and in every attention layer
    the query, key, value and output projections, ``EinsumDense`` kernels of
    shapes ``(dim, heads, dim / heads)`` and ``(heads, dim / heads, dim)``;
    LayerNorm and the position embedding are not kernels.

    Source: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words" (ViT),
    at MNIST size.
    """
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    if len(input_shape) == 1:
        side = math.isqrt(input_shape[0])
        h = keras.layers.Reshape((side, side, 1), name="to_image")(h)
    patch = patch or (7 if h.shape[1] % 7 == 0 else 2)
    h = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embedding")(h)
    h = keras.layers.Reshape((-1, dim), name="tokens")(h)
    h = PositionEmbedding(name="position_embedding")(h)
    for block in range(1, depth + 1):
        h = _block(h, heads, dim, mlp, f"block{block}")
    h = keras.layers.GlobalAveragePooling1D(name="mean_token")(h)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="ln_out")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name="vit")


@register_model("mnist", "vit", batch_size=64, learning_rate=1e-3)
@register_model("digits", "vit", batch_size=32, learning_rate=3e-3)
def vit(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The small vision transformer of :func:`vit_model`; on ``mnist`` and ``digits``."""
    return vit_model(input_shape, num_classes)
