"""Layer inputs on a data sample: vectorised, in inference mode, reduced chunk by chunk.

A measure that reads what each weight multiplies (MAAV, K-FAC-like statistics)
asks :func:`input_means` for a per-layer mean over examples, and uses
:func:`unfold` to turn a layer's input into the rows its kernel multiplies.

Limitations: layer inputs are read from the Keras graph, so the model must be
functional or ``Sequential``; subclassed models, layers of nested sub-models
and layers called more than once (shared layers) raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from measures._base import CONV_TRANSPOSE
from measures._cache import COMPILED

Reducer = Callable[[tf.Tensor], tf.Tensor]


def _graph_input(layer: keras.layers.Layer) -> keras.KerasTensor:
    if len(getattr(layer, "_inbound_nodes", ())) > 1:
        raise ValueError(f"Layer {layer.name!r} is called more than once (shared); its input is ambiguous.")
    try:
        return layer.input
    except (AttributeError, ValueError) as error:
        raise ValueError(f"Layer {layer.name!r} has no input in the model graph.") from error


def input_model(model: keras.Model, layers: Sequence[keras.layers.Layer]) -> keras.Model:
    """Build a model mapping ``model``'s input to the inputs of ``layers``, keyed ``"0"``, ``"1"``, ...

    Raises:
        ValueError: ``model`` is subclassed, or a layer's input is not
            reachable from the model's inputs (nested sub-model, shared layer).
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Layer inputs need a functional or Sequential model; {type(model).__name__!r} is subclassed "
            "(it has no `inputs`). Rebuild it with the functional API."
        )
    outputs = {str(i): _graph_input(layer) for i, layer in enumerate(layers)}
    try:
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
    except ValueError as error:
        raise ValueError(
            f"Cannot reach the inputs of {[layer.name for layer in layers]} from {model.name!r}'s inputs; "
            "layers inside nested sub-models are not supported."
        ) from error


def _chunk_sums(model, layers, reducers, cache_key: str | None) -> Callable:
    """The compiled per-chunk reduction; cached under ``("inputs", cache_key, id(model), ids of layers)``."""
    def build() -> Callable:
        features = input_model(model, layers)

        @tf.function(reduce_retracing=True)
        def chunk_sums(chunk):
            inputs = features(chunk, training=False)
            return [reduce(inputs[str(i)]) for i, reduce in enumerate(reducers)]

        return chunk_sums

    if cache_key is None:
        return build()
    return COMPILED.get(("inputs", cache_key, id(model), *map(id, layers)), (model, tuple(layers)), build)


def input_means(
    model: keras.Model, layers: Sequence[keras.layers.Layer], reducers: Sequence[Reducer], x: np.ndarray,
    batch_size: int, cache_key: str | None = None,
) -> list[np.ndarray]:
    """Return ``(1/N) sum_n reducer_l(a_{n,l})`` for each layer ``l``.

    The sample ``x`` (``N`` examples) runs through the model in chunks of
    ``batch_size`` with ``training=False``. ``reducers[l]`` maps the layer's
    input on a chunk, shape ``(B, ...)``, to the SUM over the chunk's ``B``
    examples of a per-example statistic. Results are float64 arrays. With a
    ``cache_key`` (the caller's name for its reducers, and its promise that
    they depend on the layers only: the reducers are not part of the key),
    the compiled pass is reused across calls on the same model and layers, so
    a measure scored after every epoch traces once per run.
    """
    chunk_sums = _chunk_sums(model, layers, reducers, cache_key)
    totals = [0.0] * len(layers)
    for start in range(0, len(x), batch_size):
        sums = chunk_sums(tf.convert_to_tensor(x[start:start + batch_size]))
        totals = [total + s.numpy().astype(np.float64) for total, s in zip(totals, sums, strict=True)]
    return [total / len(x) for total in totals]


def _channels_last(layer: keras.layers.Layer, inputs: tf.Tensor) -> tf.Tensor:
    if getattr(layer, "data_format", "channels_last") == "channels_last":
        return inputs
    rank = len(inputs.shape)
    return tf.transpose(inputs, [0, *range(2, rank), 1])


def _patches(inputs: tf.Tensor, size, strides, rates, padding: str) -> tf.Tensor:
    patches = tf.image.extract_patches(
        inputs, sizes=[1, *size, 1], strides=[1, *strides, 1], rates=[1, *rates, 1], padding=padding.upper()
    )
    return tf.reshape(patches, (tf.shape(patches)[0], -1, patches.shape[-1]))


def _unfold_conv1d(layer: keras.layers.Conv1D, inputs: tf.Tensor) -> tf.Tensor:
    (size,), (rate,), padding = layer.kernel_size, layer.dilation_rate, layer.padding
    if padding == "causal":
        inputs, padding = tf.pad(inputs, [[0, 0], [(size - 1) * rate, 0], [0, 0]]), "valid"
    return _patches(inputs[:, None], (1, size), (1, *layer.strides), (1, rate), padding)


def unfold(layer: keras.layers.Layer, inputs: tf.Tensor) -> tf.Tensor:
    """Rearrange a layer's input into the rows its kernel multiplies.

    Returns shape ``(B, P, F)``: ``P`` output positions (1 for a Dense layer on
    2-D input) and ``F`` input features, ordered like the kernel's leading axes
    flattened: ``in`` for Dense, ``kh * kw * cin`` for Conv2D, ``k * cin`` for
    Conv1D (all input channels, whatever ``groups``). Zero padding appears as
    zeros; strides, dilation and ``channels_first`` are respected.

    Raises:
        ValueError: the layer is not Dense, Conv1D or Conv2D.
    """
    if isinstance(layer, keras.layers.Dense):
        return tf.reshape(inputs, (tf.shape(inputs)[0], -1, inputs.shape[-1]))
    if isinstance(layer, CONV_TRANSPOSE) or not isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
        raise ValueError(f"Layer inputs are unfolded for Dense, Conv1D and Conv2D only. Received: {layer!r}")
    inputs = _channels_last(layer, inputs)
    if isinstance(layer, keras.layers.Conv1D):
        return _unfold_conv1d(layer, inputs)
    return _patches(inputs, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
