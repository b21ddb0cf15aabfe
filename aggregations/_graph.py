"""Where a unit's output goes: the next Dense or convolution layer along the data path, and the layers between.

A unit (Dense neuron, convolution filter) of layer ``P`` is consumed by the
next Dense or convolution layer ``C`` reached from ``P`` through layers that
keep channels apart (BatchNormalization, element-wise activations, dropout,
pooling, Flatten, Reshape of a flat vector). Its consuming slice is every
kernel row of ``C`` (axis -2) fed by it: row ``r`` is fed by channel
``r % channels``, which covers a Flatten of ``(..., channels)`` (every
position of the channel) and a direct Dense or convolution consumer.
There is no consumer when ``P``'s output is the model's, feeds several layers
(a residual Add, a branch), or reaches any other layer first (attention,
a merge, a Reshape of channels): units then fall back (see ``aggregations/unit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from measures._base import CONV_LAYERS, CONV_TRANSPOSE

CHANNEL_WISE = (
    keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
    keras.layers.ELU, keras.layers.Flatten, keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.ActivityRegularization,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
)
MIXING_ACTIVATIONS = ("softmax", "log_softmax")


@dataclass
class Path:
    """Where the units of one layer go.

    Attributes:
        consumer: The next Dense or convolution layer, or None.
        between: The layers passed on the way (BatchNormalization among them).
        reason: Why there is no consumer, or ``""``.
    """

    consumer: keras.layers.Layer | None
    between: list = field(default_factory=list)
    reason: str = ""


def is_unit_layer(layer) -> bool:
    """Whether ``layer`` is a Dense or (non-transposed) convolution layer."""
    return isinstance(layer, keras.layers.Dense) or (
        isinstance(layer, CONV_LAYERS) and not isinstance(layer, CONV_TRANSPOSE))


def _next_layers(layer) -> list:
    """The distinct layers reading ``layer``'s output."""
    found = {}
    for node in getattr(layer, "_outbound_nodes", []):
        found.setdefault(id(node.operation), node.operation)
    return list(found.values())


def _keeps_channels(layer) -> bool:
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") not in MIXING_ACTIVATIONS
    if isinstance(layer, keras.layers.Reshape):  # a flat vector made an image, the layer before was a Dense
        return False
    return isinstance(layer, CHANNEL_WISE) and getattr(layer, "data_format", "channels_last") == "channels_last"


def follow(layer) -> Path:
    """The consumer of ``layer``'s units and the layers between (:class:`Path`)."""
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if activation in MIXING_ACTIVATIONS:
        return Path(None, [], f"its activation {activation!r} mixes its units")
    current, between = layer, []
    while True:
        following = _next_layers(current)
        if not following:
            return Path(None, between, "its outputs are the model's outputs")
        if len(following) > 1:
            return Path(None, between, f"{current.name} feeds {len(following)} layers (a branch or residual connection)")
        current = following[0]
        if is_unit_layer(current):
            return Path(current, between)
        if not _keeps_channels(current):
            return Path(None, between, f"{type(current).__name__} {current.name} lies before the next layer")
        between.append(current)


def row_channels(consumer, channels: int) -> np.ndarray | None:
    """The producing channel of every kernel row (axis -2) of ``consumer``: ``r % channels``; None if rows don't divide."""
    rows = int(consumer.kernel.shape[-2])
    return np.arange(rows) % channels if rows % channels == 0 else None
