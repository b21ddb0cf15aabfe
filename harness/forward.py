"""Forward passes over a layer chain with given weights: shrunk (structured removal) and batched over thresholds.

Both run inside one ``tf.function`` per sweep method; Dense and convolution
layers are computed from the weights passed in, every other layer of the
chain by the layer itself. See :mod:`harness.structure` for which chains
qualify.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from harness.structure import Structure


def apply_layer(layer, x, kernel, bias):
    """``act(conv_or_matmul(x, kernel) + bias)``, as the Keras layer computes it but with the given weights.

    Args:
        layer: A Dense or convolution layer (channels last).
        x: Inputs ``(n, ..., in)``.
        kernel: ``(*taps, in', out')``; ``in'`` must match ``x``.
        bias: ``(out',)`` or None.
    """
    if isinstance(layer, keras.layers.Dense):
        y = keras.ops.matmul(x, kernel)
    else:
        y = layer.convolution_op(x, kernel)
    if bias is not None:
        y = y + bias
    return layer.activation(y) if layer.activation is not None else y


def chain_forward(structure: Structure, x, weights: dict):
    """Run the chain on ``x`` with ``weights[i] = (kernel, bias)`` for link ``i``; other layers run as they are."""
    index = {id(link.layer): i for i, link in enumerate(structure.links)}
    for layer in structure.chain:
        if id(layer) in index:
            x = apply_layer(layer, x, *weights[index[id(layer)]])
        else:
            x = layer(x, training=False)
    return x


def unit_constants(structure: Structure, i: int):
    """What each unit of link ``i`` sends its consumer once its kernel is all zero: ``act(b)`` through the layers between.

    Returns:
        Shape ``(units,)``, read from the live bias (zeros when the layer has none).
    """
    link = structure.links[i]
    bias = link.bias.value if link.bias is not None else tf.zeros((link.units,), link.kernel.dtype)
    value = link.layer.activation(bias[None, :]) if link.layer.activation is not None else bias[None, :]
    for layer in link.between:
        value = layer(value, training=False)
    return value[0]


def shrunk_weights(structure: Structure, kept) -> dict:
    """Weights of the physically smaller model, from the live (masked) variables.

    The units of every link are ordered so that the kept ones come first
    (:class:`UnitOrder`): link ``i``'s kernel keeps its first ``kept[i]``
    output columns (a slice, not a gather) and its bias the same entries.
    Its consumer ``c`` keeps the kernel rows whose unit is kept, and ``c``'s
    bias gains ``sum_r const[r] * W_c[..., r, :]`` over the other rows,
    summed over the taps: the fold of the removed units' constant outputs.

    Args:
        structure: A chain structure.
        kept: int32 vector, per link the number of units kept (all of them
            for a link without consumer).

    Returns:
        ``{link index: (kernel, bias)}``.
    """
    kernels = {i: link.kernel.value for i, link in enumerate(structure.links)}
    biases = {i: (link.bias.value if link.bias is not None else tf.zeros((link.units,), link.kernel.dtype))
              for i, link in enumerate(structure.links)}
    for i, link in enumerate(structure.links):
        if link.consumer is None:
            continue
        c, row_units = link.consumer, structure.row_units(i)
        alive = tf.constant(row_units.astype(np.int32)) < kept[i]
        const = tf.where(alive, tf.zeros((), kernels[c].dtype), tf.gather(unit_constants(structure, i), row_units))
        tap_sum = tf.reduce_sum(kernels[c], axis=list(range(len(kernels[c].shape) - 2)))
        biases[c] = biases[c] + tf.linalg.matvec(tap_sum, const, transpose_a=True)
        kernels[c] = tf.gather(kernels[c], tf.reshape(tf.where(alive), [-1]), axis=-2)
        kernels[i] = kernels[i][..., : kept[i]]
        biases[i] = biases[i][: kept[i]]
    return {i: (kernels[i], biases[i] if link.bias is not None or i in _consumers(structure) else None)
            for i, link in enumerate(structure.links)}


def _consumers(structure: Structure) -> set:
    return {link.consumer for link in structure.links if link.consumer is not None}


class UnitOrder:
    """Reorders the units of the live model so that, at every step, the units kept come first.

    Units of link ``i`` are sorted by decreasing removal step (stable); the
    kernel's output columns, the bias and the consumer's kernel rows move
    with them, so the model computes exactly what it did. The shrunk model
    then slices kernels instead of gathering columns (a strided gather on
    the last axis costs as much as a third of a forward pass on a CPU).

    Args:
        structure: A chain structure.
        units: ``{link: removal step of each unit}`` (:func:`harness.structure.unit_steps`).
    """

    def __init__(self, structure: Structure, units: dict):
        self.structure = structure
        self.perms = {i: np.argsort(-steps, kind="stable") for i, steps in units.items()}
        self.units = {i: steps[self.perms[i]] for i, steps in units.items()}
        self.index: dict[int, np.ndarray] = {}  # id(variable) -> old flat index of each new position
        for i, perm in self.perms.items():
            link = structure.links[i]
            self._permute(link.kernel, -1, perm)
            if link.bias is not None:
                self._permute(link.bias, -1, perm)
            rows = np.arange(len(structure.row_units(i)))  # row r carries unit r % units (flattened channels last)
            self._permute(structure.links[link.consumer].kernel, -2, rows - rows % link.units + perm[rows % link.units])
        self.variables = {id(v): v for link in structure.links for v in (link.kernel, link.bias) if v is not None}
        self.originals: dict[int, np.ndarray] = {}

    def _permute(self, variable, axis: int, order: np.ndarray) -> None:
        base = self.index.get(id(variable), np.arange(int(np.prod(variable.shape))).reshape(variable.shape))
        self.index[id(variable)] = np.take(base, order, axis=axis)

    def new_positions(self, variable) -> np.ndarray | None:
        """For every old flat index of ``variable``, its flat index after reordering (None if it does not move)."""
        index = self.index.get(id(variable))
        if index is None:
            return None
        new = np.empty(index.size, np.int32)
        new[index.ravel()] = np.arange(index.size, dtype=np.int32)
        return new

    def apply(self, known: dict | None = None) -> None:
        """Reorder the live variables.

        Args:
            known: ``{id(variable): its current values}`` where they are at
                hand on the host already (other variables are read).
        """
        known = known or {}
        for key, index in self.index.items():
            variable = self.variables[key]
            values = known[key] if key in known else np.asarray(variable.numpy())
            self.originals[key] = values
            variable.assign(values.ravel()[index.ravel()].reshape(index.shape))

    def restore(self, skip=()) -> None:
        """Assign the values held before :meth:`apply`, except to variables whose ids are in ``skip``."""
        for key, values in self.originals.items():
            if key not in skip:
                self.variables[key].assign(values)
        self.originals = {}

    def kept(self, k: int) -> np.ndarray:
        """Units kept by every link at each of ``k`` steps, shape ``(k, links)``.

        A link whose units are all removed keeps one (its zero column stays
        and its constant output is not folded), so no layer has width zero.
        """
        table = np.array([[link.units for link in self.structure.links]] * k, np.int32).reshape(k, -1)
        for i, steps in self.units.items():
            table[:, i] = np.maximum(1, len(steps) - np.cumsum(np.bincount(steps, minlength=k + 1))[:k])
        return table


def batched_forward(structure: Structure, x, weights: dict, k: int):
    """Run the chain for ``k`` weight sets at once.

    Args:
        structure: A chain structure.
        x: Inputs ``(n, ...)`` shared by all ``k`` sets.
        weights: ``{link: (kernel, bias)}``; a kernel of shape ``(k, *shape)``
            differs per set, one of the layer's own shape is shared (bias likewise).
        k: Number of weight sets.

    Returns:
        Outputs ``(k, n, ...)``.
    """
    n = tf.shape(x)[0]
    index = {id(link.layer): i for i, link in enumerate(structure.links)}
    stacked = False  # whether x is (k * n, ...) rather than shared (n, ...)
    for layer in structure.chain:
        if id(layer) in index:
            x, stacked = _batched_layer(layer, x, *weights[index[id(layer)]], k, n, stacked)
        else:
            x = layer(x, training=False)
    if not stacked:
        return tf.tile(x[None], [k] + [1] * len(x.shape))
    return tf.reshape(x, tf.concat([[k, n], tf.shape(x)[1:]], 0))


def _batched_layer(layer, x, kernel, bias, k, n, stacked):
    """One Dense or convolution layer on shared or stacked inputs, with shared or per-set weights."""
    kernel_sets = len(kernel.shape) == len(layer.kernel.shape) + 1
    bias_sets = bias is not None and len(bias.shape) == 2
    if not (kernel_sets or bias_sets):
        return apply_layer(layer, x, kernel, bias), stacked
    if not kernel_sets:
        kernel = tf.broadcast_to(kernel[None], [k, *kernel.shape])
    y = _dense_sets(x, kernel, k, n, stacked) if isinstance(layer, keras.layers.Dense) else \
        _conv_sets(layer, x, kernel, k, n, stacked)
    if bias_sets:
        static = y.shape
        y = tf.reshape(tf.reshape(y, [k, -1, kernel.shape[-1]]) + bias[:, None, :], tf.shape(y))
        y.set_shape(static)
    elif bias is not None:
        y = y + bias
    return (layer.activation(y) if layer.activation is not None else y), True


def _dense_sets(x, kernel, k, n, stacked):
    """``x @ kernel[s]`` for every set s; returns ``(k * n, ..., out)``."""
    if not stacked:  # one wide matmul: x @ [W_1 ... W_k]
        wide = tf.reshape(tf.transpose(kernel, [1, 0, 2]), [kernel.shape[1], -1])
        y = tf.reshape(tf.matmul(tf.reshape(x, [-1, kernel.shape[1]]), wide), tf.concat([tf.shape(x)[:-1], [k, -1]], 0))
        rank = len(x.shape)
        return tf.reshape(tf.transpose(y, [rank - 1] + list(range(rank - 1)) + [rank]),
                          tf.concat([[k * n], tf.shape(x)[1:-1], [-1]], 0))
    sets = tf.reshape(x, [k, -1, kernel.shape[1]])
    y = tf.matmul(sets, kernel)
    return tf.reshape(y, tf.concat([[k * n], tf.shape(x)[1:-1], [-1]], 0))


def _conv_sets(layer, x, kernel, k, n, stacked):
    """Convolution with a different kernel per set, as one grouped convolution; returns ``(k * n, ..., out)``."""
    taps = len(kernel.shape) - 3
    if stacked:  # (k*n, ..., c) -> (n, ..., k*c)
        x = tf.reshape(x, tf.concat([[k, n], tf.shape(x)[1:]], 0))
        x = tf.transpose(x, [1] + list(range(2, taps + 2)) + [0, taps + 2])
        x = tf.reshape(x, tf.concat([[n], tf.shape(x)[1:-2], [-1]], 0))
    # kernel (k, *taps, c, o) -> (*taps, c, k*o): output channel s*o + j is set s's filter j
    wide = tf.reshape(tf.transpose(kernel, list(range(1, taps + 2)) + [0, taps + 2]),
                      list(kernel.shape[1:-1]) + [-1])
    y = layer.convolution_op(x, wide)
    y = tf.reshape(y, tf.concat([tf.shape(y)[:-1], [k, -1]], 0))
    y = tf.transpose(y, [taps + 1] + list(range(taps + 1)) + [taps + 2])
    return tf.reshape(y, tf.concat([[k * n], tf.shape(y)[2:]], 0))
