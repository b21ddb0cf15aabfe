"""Per-example parameter gradients of one layer, from its input and the gradient at its output, summed.

Each function returns ``sum_{n,k} transform(d t_nk / d theta)`` for the
layer's parameters, where ``dy`` (shape ``(K, B, *out)``) holds the gradient
of term ``k`` of example ``n`` with respect to the layer's output. Examples
are independent in inference mode, so ``dy[k, n]`` is example ``n``'s own
gradient. No Python loop over examples; nothing of size ``B x P x F`` (the
unfolded input) is built:

- Conv1D/Conv2D kernels: for each kernel offset, the input shifted by that
  offset ``(B, P, in)`` times the output gradient ``(B, P, K * out)``, one
  batched matmul giving every example's gradient of that kernel slice.
- BatchNormalization in inference mode, ``y = gamma * xhat + beta`` with
  ``xhat = (a - moving_mean) / sqrt(moving_variance + epsilon)``:
  ``d gamma_n = sum_p dy_np * xhat_np`` and ``d beta_n = sum_p dy_np``.
- Activations relu and linear are undone from the layer's output
  (``relu'(z) = [y > 0]``), so the pre-activation is not recomputed.

:func:`layer_sums` picks the right one for a layer.

Source: per-example gradients from layer inputs and output gradients as in
BackPACK (Dangel et al. 2020) and Rochette et al. 2019, "Efficient
per-example gradient computations in convolutional neural networks".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import tensorflow as tf

from measures._base import Param
from measures._layer_inputs import unfold


def bn_tappable(param: Param) -> bool:
    """Gamma or beta of a channels-last BatchNormalization layer called once (read in inference mode)."""
    layer = param.layer
    if not isinstance(layer, keras.layers.BatchNormalization) or len(getattr(layer, "_inbound_nodes", ())) != 1:
        return False
    try:
        rank = len(layer.input.shape)
    except (AttributeError, ValueError):
        return False
    return layer.axis in (-1, rank - 1) and any(param.variable is getattr(layer, n, None) for n in ("gamma", "beta"))


def bn_slot(param: Param) -> str:
    """``"gamma"`` or ``"beta"``: which BatchNormalization variable ``param`` is."""
    return "gamma" if param.variable is param.layer.gamma else "beta"


def bn_sums(layer, a: tf.Tensor, dy: tf.Tensor, transform: Callable) -> dict:
    """``{"gamma", "beta"}``: summed transforms of per-example gradients of a BatchNormalization layer."""
    xhat = (a - layer.moving_mean) * tf.math.rsqrt(layer.moving_variance + layer.epsilon)  # (B, ..., C)
    positions = list(range(2, len(dy.shape) - 1))
    beta = tf.reduce_sum(dy, axis=positions) if positions else dy  # (K, B, C)
    gamma = tf.reduce_sum(dy * xhat[None], axis=positions) if positions else dy * xhat[None]
    return {"gamma": tf.reduce_sum(transform(gamma), axis=[0, 1]), "beta": tf.reduce_sum(transform(beta), axis=[0, 1])}


def activation_grads(layer, y: tf.Tensor, dy: tf.Tensor) -> tf.Tensor | None:
    """Gradient at the pre-activation from the output ``y`` for relu and linear layers; None for others."""
    if layer.activation in (None, keras.activations.linear):
        return dy
    if layer.activation is keras.activations.relu:
        return dy * tf.cast(y > 0, dy.dtype)[None]
    return None


def _padded(layer, a: tf.Tensor) -> tf.Tensor:
    """Channels-last input ``(B, H, W, C)`` padded as the layer pads it (Conv1D as ``H = 1``)."""
    sizes = [1, *layer.kernel_size] if len(layer.kernel_size) == 1 else list(layer.kernel_size)
    if layer.padding != "same":
        return a
    pads = [[0, 0]]
    for axis, (k, s, d) in enumerate(zip(sizes, _strides(layer), _dilations(layer)), start=1):
        n = a.shape[axis]
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append([total // 2, total - total // 2])
    return tf.pad(a, [*pads, [0, 0]])


def _strides(layer) -> list[int]:
    return [1, *layer.strides] if len(layer.strides) == 1 else list(layer.strides)


def _dilations(layer) -> list[int]:
    rates = layer.dilation_rate
    return [1, *rates] if len(rates) == 1 else list(rates)


def conv_kernel_sums(layer, a: tf.Tensor, dz: tf.Tensor, transform: Callable) -> tf.Tensor:
    """Summed transforms of per-example kernel gradients of a channels-last, ungrouped Conv1D/Conv2D layer.

    Args:
        layer: The layer (padding ``valid`` or ``same``, any strides and dilation).
        a: Its input ``(B, [H,] W, in)``.
        dz: Gradients at its pre-activation ``(K, B, [H',] W', out)``.
        transform: Elementwise and multiplicative (``tf.square``, ``tf.abs``).

    Returns:
        Shape of the kernel.
    """
    if len(a.shape) == 3:  # Conv1D: one row
        a, dz = a[:, None], dz[:, :, None]
    a = _padded(layer, a)
    (kh, kw), (sh, sw), (dh, dw) = ([1, *layer.kernel_size] if len(layer.kernel_size) == 1 else layer.kernel_size,
                                   _strides(layer), _dilations(layer))
    k, b, oh, ow, out = (tf.shape(dz)[0], tf.shape(dz)[1], dz.shape[2], dz.shape[3], dz.shape[4])
    grads = tf.reshape(tf.transpose(dz, [1, 2, 3, 0, 4]), (b, oh * ow, -1))  # (B, P, K * out)
    slices = []
    for i in range(kh):
        for j in range(kw):
            rows = a[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
            per_example = tf.matmul(tf.reshape(rows, (b, oh * ow, -1)), grads, transpose_a=True)  # (B, in, K*out)
            per_example = tf.reshape(per_example, (b, -1, k, out))
            slices.append(tf.reduce_sum(transform(per_example), axis=[0, 2]))
    return tf.reshape(tf.stack(slices), layer.kernel.shape)


def _preactivation_grads(layer, a: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Back-propagate ``dy`` (K, B, ..., out) through the layer's activation, at its recomputed pre-activation."""
    z = layer.convolution_op(a, layer.kernel) if hasattr(layer, "convolution_op") else tf.matmul(a, layer.kernel)
    z = z + layer.bias if layer.bias is not None else z
    z = tf.broadcast_to(z[None], tf.shape(dy))
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = layer.activation(z) if layer.activation is not None else z
    return tape.gradient(y, z, output_gradients=dy)


def layer_sums(layer, a: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, transform: Callable) -> dict:
    """Return ``sum_{n,k} transform(d t_nk / d theta)`` for the layer's kernel and bias (BN: gamma and beta).

    Where the input has one position the per-example kernel gradient is an
    outer product and ``transform(xy) = transform(x) transform(y)`` gives the
    sum as one matmul (BackPACK's trick); conv kernels take one batched matmul
    per kernel offset (:func:`conv_kernel_sums`); a Dense layer on inputs with
    several positions ``(B, ..., in)`` takes an einsum over positions of its
    inputs and output gradients. Activations other than relu and linear are
    undone at the recomputed pre-activation.

    Args:
        layer: A tapped layer (see ``measures._per_example``).
        a: Its input ``(B, ..., in)``.
        y: Its output ``(B, ..., out)``.
        dy: Gradients of the ``K`` terms at its output ``(K, B, ..., out)``.
        transform: Elementwise and multiplicative (``tf.square``, ``tf.abs``).

    Returns:
        ``{"kernel", "bias"}`` or ``{"gamma", "beta"}``, each shaped like the variable.
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        return bn_sums(layer, a, dy, transform)
    fast_dz = activation_grads(layer, y, dy)
    dz = _preactivation_grads(layer, a, dy) if fast_dz is None else fast_dz
    if hasattr(layer, "convolution_op"):
        bias = tf.reduce_sum(transform(tf.reduce_sum(dz, axis=list(range(2, len(dz.shape) - 1)))), axis=[0, 1])
        return {"kernel": conv_kernel_sums(layer, a, dz, transform), "bias": bias}
    rows = unfold(layer, a)  # (B, P, F)
    dz = tf.reshape(dz, (tf.shape(dz)[0], tf.shape(rows)[0], -1, dz.shape[-1]))  # (K, B, P, out)
    bias = tf.reduce_sum(transform(tf.reduce_sum(dz, axis=2)), axis=[0, 1])
    if isinstance(layer, keras.layers.Dense) and len(a.shape) == 2:  # one position, known statically
        kernel = tf.matmul(transform(a), tf.reduce_sum(transform(dz[:, :, 0]), axis=0), transpose_a=True)
    else:
        kernel = tf.reduce_sum(transform(tf.einsum("bpf,kbpo->kbfo", rows, dz)), axis=[0, 1])
    return {"kernel": tf.reshape(kernel, layer.kernel.shape), "bias": bias}


def slot(param: Param) -> str:
    """Key of ``param`` in its layer's sums: its role, or ``gamma``/``beta`` for BatchNormalization."""
    return bn_slot(param) if isinstance(param.layer, keras.layers.BatchNormalization) else param.role
