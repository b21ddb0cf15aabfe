"""Forward passes over a layer chain with given weights: shrunk (structured removal) and batched over thresholds.

Both run inside one ``tf.function`` per sweep method; Dense and convolution
layers are computed from the weights passed in, every other layer of the
chain by the layer itself. See :mod:`harness.thresholding.structure` for which chains
qualify.
"""

from __future__ import annotations

import copy
import hashlib

import keras
import numpy as np
import tensorflow as tf

from harness.thresholding.structure import Structure


def apply_layer(layer, x, kernel, bias):
    """``act(conv_or_matmul(x, kernel) + bias)``, as the Keras layer computes it but with the given weights.

    Args:
        layer: A Dense or convolution layer (channels last).
        x: Inputs ``(n, ..., in)``.
        kernel: ``(*taps, in', out')``; ``in'`` must match ``x``.
        bias: ``(out',)`` or None.
    """
    return finish_layer(layer, layer_product(layer, x, kernel), bias)


def layer_product(layer, x, kernel):
    """``x @ kernel`` for a Dense layer, the layer's convolution of ``x`` with ``kernel`` otherwise."""
    if isinstance(layer, keras.layers.Dense):
        return keras.ops.matmul(x, kernel)
    return layer.convolution_op(x, kernel)


def finish_layer(layer, y, bias):
    """``act(y + bias)`` with the layer's activation (no bias: ``act(y)``)."""
    if bias is not None:
        y = y + bias
    return layer.activation(y) if layer.activation is not None else y


def chain_forward(structure: Structure, x, weights: dict, start: int = 0):
    """Run the chain on ``x`` with ``weights[i] = (kernel, bias)`` for link ``i``; other layers run as they are.

    ``start``: the position in the chain of the first layer to run (``x`` is the input of that layer).
    """
    index = {id(link.layer): i for i, link in enumerate(structure.links)}
    for layer in structure.chain[start:]:
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
        units: ``{link: removal step of each unit}`` (:func:`harness.thresholding.structure.unit_steps`).
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
        return np.maximum(1, self.alive(k))

    def alive(self, k: int) -> np.ndarray:
        """Units not removed from every link at each of ``k`` steps, shape ``(k, links)`` (0 where all are removed)."""
        table = np.array([[link.units for link in self.structure.links]] * k, np.int32).reshape(k, -1)
        for i, steps in self.units.items():
            table[:, i] = len(steps) - np.cumsum(np.bincount(steps, minlength=k + 1))[:k]
        return table


class FirstLayer:
    """The first Dense or convolution layer's products over the validation set, computed once per sweep or fewer.

    In a sweep whose items are the first layer's whole units (every kernel
    weight of a unit replaced by zero at the step its unit is removed, or
    never), the units a threshold keeps have their original kernels, so
    their products ``x @ W`` (``conv(x, W)``), before bias and activation,
    are the same at every threshold. They are computed with the original
    kernel into a buffer of shape ``(n, *output shape)``, again only when
    the kernel's bytes change (sweeps of one epoch share them), and copied
    with the channels in each sweep's unit order (:class:`UnitOrder`); each
    threshold's shrunk model takes the first ``kept`` channels, adds the
    live bias, applies the activation and runs the rest of the chain. Where
    every unit is removed, the one unit kept has a zero kernel: its products
    are taken times 0. The products come from the same operation as the
    shrunk model's (on more columns), so the losses agree to float32 rounding.

    Used only where the layer is worth it: no layer with weights before it,
    at least :data:`MIN_REDUCTION` multiply-adds per output value, and two
    buffers of at most :data:`CACHE_BYTES` together.

    Args:
        evaluate: The sweep's evaluator (its inputs, targets and batches).
        structure: Its model's chain structure.
    """

    MIN_REDUCTION = 32
    CACHE_BYTES = 64 * 2**20

    def __init__(self, evaluate, structure: Structure):
        self.structure, self.link = structure, structure.links[0]
        self.start = structure.chain.index(self.link.layer)
        shape = (evaluate.n, *self.link.layer.output.shape[1:])
        self.products = tf.Variable(tf.zeros(shape, self.link.kernel.dtype), trainable=False)  # original unit order
        self.values = tf.Variable(tf.zeros(shape, self.link.kernel.dtype), trainable=False)  # this sweep's order
        self.evaluate = copy.copy(evaluate)  # the same targets, batches and columns, over the products
        self.evaluate.x = self.values
        self._source, self._digest = evaluate, None
        self._compute = tf.function(self._products, autograph=False).get_concrete_function
        self._reorder = tf.function(lambda order: self.values.assign(tf.gather(self.products, order, axis=-1)),
                                    input_signature=[tf.TensorSpec([self.link.units], tf.int32)],
                                    autograph=False).get_concrete_function

    @staticmethod
    def usable(evaluate, structure: Structure) -> bool:
        """Whether the buffers of the first link's products pay and fit (see the class)."""
        if structure.chain is None or not structure.links:
            return False
        link = structure.links[0]
        shape = link.layer.output.shape[1:]
        if any(layer.weights for layer in structure.chain[: structure.chain.index(link.layer)]) or None in shape:
            return False
        size = 2 * evaluate.n * int(np.prod(shape)) * np.dtype(link.kernel.dtype).itemsize
        return int(np.prod(link.kernel.shape[:-1])) >= FirstLayer.MIN_REDUCTION and size <= FirstLayer.CACHE_BYTES

    @staticmethod
    def fixed(structure: Structure, kernel_steps: np.ndarray | None, units: dict, k: int) -> bool:
        """Whether every kernel weight of the first link is replaced exactly when its unit is removed, or never.

        Args:
            structure: The chain structure.
            kernel_steps: Step of every element of the first link's kernel
                (None when it is not prunable).
            units: Removal step of every unit per link (:func:`harness.thresholding.structure.unit_steps`).
            k: Number of steps ("never").
        """
        if kernel_steps is None:
            return True
        removed = units.get(0, np.full(structure.links[0].units, k))
        return bool(np.all(kernel_steps.reshape(-1, structure.links[0].units) == removed))

    def fill(self, order: np.ndarray | None) -> None:
        """Bring the products up to date with the live (original) kernel and put the channels in ``order``.

        Args:
            order: The old index of each unit in the sweep's order
                (:attr:`UnitOrder.perms` of link 0); None: unchanged.
        """
        digest = hashlib.sha256(np.ascontiguousarray(self.link.kernel.numpy()).data).digest()
        if digest != self._digest:
            self._compute()()
            self._digest = digest
        self._reorder()(tf.constant(np.arange(self.link.units) if order is None else order, tf.int32))

    def _products(self):
        source, size = self._source, self._source.batch_size
        for i in range(0, source.n, size):
            x = source.x[i : i + size]
            for layer in self.structure.chain[: self.start]:
                x = layer(x, training=False)
            self.products[i : i + size].assign(layer_product(self.link.layer, x, self.link.kernel.value))

    def forward(self, products, weights: dict, kept, scale):
        """The shrunk model's outputs from a batch of products: their first ``kept`` channels times ``scale``, and on."""
        y = products[..., :kept] * tf.cast(scale, products.dtype)
        y = finish_layer(self.link.layer, y, weights[0][1])
        return chain_forward(self.structure, y, weights, self.start + 1)


def shrunk_step(evaluate, structure: Structure, buffers, n_params: int, first: FirstLayer | None):
    """The compiled step of a shrunk sweep: ``f(control)`` returns the evaluator's column sums.

    ``control`` (int32) holds the span to scatter (``2 * n_params``,
    :meth:`harness.thresholding.masks.MaskBuffers.advance`), the units kept per link
    (:meth:`UnitOrder.kept`) and, with ``first``, whether any unit of the
    first link is alive (the products' scale, 0 or 1).
    """
    n, links = n_params, len(structure.links)

    def scatter(control):
        buffers.scatter(tf.reshape(control[: 2 * n], [2, n]))

    def weights(control):
        return shrunk_weights(structure, control[2 * n : 2 * n + links])

    if first is None:
        return evaluate.compile(lambda x, w: chain_forward(structure, x, w), [tf.TensorSpec([2 * n + links], tf.int32)],
                                scatter, weights, static_shapes=False)
    return first.evaluate.compile(lambda z, extra: first.forward(z, *extra), [tf.TensorSpec([2 * n + links + 1], tf.int32)],
                                  scatter, lambda c: (weights(c), c[2 * n], c[-1]), static_shapes=False)


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
