"""The likelihood a loss stands for: targets, log-probabilities and the terms of the Fisher and the GGN.

A loss is read as the negative log-likelihood of a distribution over the
outputs: softmax cross-entropy as a categorical distribution over the
classes, mean squared error as a unit-variance Gaussian. Shapes: ``B``
examples, ``C`` classes or outputs.

Source: Martens 2020, "New insights and perspectives on the natural gradient
method" (Fisher and GGN of exponential-family outputs), JMLR 21.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from measures._base import MeasureContext

SOFTMAX_LOSSES = (keras.losses.SparseCategoricalCrossentropy, keras.losses.CategoricalCrossentropy)
GAUSSIAN_LOSSES = (keras.losses.MeanSquaredError,)



def likelihood(loss: keras.losses.Loss) -> str:
    """Name the likelihood whose negative log ``loss`` is: ``"softmax"`` or ``"gaussian"`` (unit variance).

    Raises:
        ValueError: ``loss`` is not softmax cross-entropy (over the last axis,
            no ``ignore_class``) or mean squared error.
    """
    config = loss.get_config() if isinstance(loss, keras.losses.Loss) else {}
    if isinstance(loss, SOFTMAX_LOSSES) and config.get("ignore_class") is None and config.get("axis", -1) == -1:
        return "softmax"
    if isinstance(loss, GAUSSIAN_LOSSES):
        return "gaussian"
    names = [cls.__name__ for cls in SOFTMAX_LOSSES + GAUSSIAN_LOSSES]
    raise ValueError(
        f"loss must be one of {names} (cross-entropy over the last axis, without ignore_class) to be read as a "
        f"log-likelihood. Received: loss={type(loss).__name__}({config})"
    )


def targets(loss: keras.losses.Loss, y: np.ndarray, n_out: int) -> np.ndarray:
    """Return float32 targets ``(N, n_out)``: regression targets, or class probabilities (one-hot, smoothed)."""
    y = np.asarray(y)
    if likelihood(loss) == "gaussian":
        return y.reshape(len(y), n_out).astype(np.float32)
    if y.ndim == 1 or y.shape[-1] != n_out:
        y = np.eye(n_out, dtype=np.float32)[y.reshape(len(y)).astype(int)]
    smoothing = loss.get_config().get("label_smoothing", 0.0)
    return (y * (1.0 - smoothing) + smoothing / n_out).astype(np.float32)


def log_probs(loss: keras.losses.Loss, outputs: tf.Tensor) -> tf.Tensor:
    """Log class probabilities ``(B, C)``: log-softmax of logits, or the log of normalised, clipped probabilities."""
    if loss.get_config()["from_logits"]:
        return tf.nn.log_softmax(outputs, axis=-1)
    eps = keras.config.epsilon()
    probs = outputs / tf.reduce_sum(outputs, axis=-1, keepdims=True)
    return tf.math.log(tf.clip_by_value(probs, eps, 1.0 - eps))


def log_likelihood(loss: keras.losses.Loss, outputs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``log p(y | x)`` per example, ``(B, 1)``; Gaussian: ``-0.5 ||y - f||^2`` (constant dropped)."""
    if likelihood(loss) == "gaussian":
        return -0.5 * tf.reduce_sum(tf.square(y - outputs), axis=-1, keepdims=True)
    return tf.reduce_sum(y * log_probs(loss, outputs), axis=-1, keepdims=True)


def fisher_terms(loss: keras.losses.Loss, outputs: tf.Tensor) -> tf.Tensor:
    """Terms ``(B, K)`` whose squared gradients, summed over K, are the true Fisher of each example.

    Softmax: ``sqrt(p_c) log p_c`` with ``p_c`` held constant, so the squared
    gradient is ``p_c (d log p_c)^2``. Gaussian: ``f_j``, since
    ``E[(J^T e)^2] = sum_j J_j^2`` for ``e ~ N(0, I)``.
    """
    if likelihood(loss) == "gaussian":
        return outputs
    logp = log_probs(loss, outputs)
    return tf.sqrt(tf.stop_gradient(tf.exp(logp))) * logp


def output_hessian_scale(loss: keras.losses.Loss, n_out: int) -> float:
    """Return ``c`` with ``diag(GGN) = c * true Fisher``.

    Softmax cross-entropy: the Hessian in the logits is ``diag(p) - p p^T``,
    the true Fisher's, so ``c = 1``. Keras MSE averages over the ``n_out``
    outputs, so its Hessian in the outputs is ``(2 / n_out) I``.
    """
    return 2.0 / n_out if likelihood(loss) == "gaussian" else 1.0


def output_size(ctx: MeasureContext) -> int:
    """Size of the model's output's last axis (classes or regression targets), from one example."""
    return int(ctx.model(ctx.x[:1], training=False).shape[-1])
