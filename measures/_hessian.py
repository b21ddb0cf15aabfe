"""The gradient and Hessian-vector products of the mean loss over a sample (SNIP, Taylor, GraSP, OBD).

    L = (1/N) sum_n loss(y_n, f(x_n)),   g = dL/dtheta,   H z = d(g . z)/dtheta

``loss`` is ``ctx.loss.call`` (any Keras loss, unreduced), in inference mode.
The sample runs in chunks ``c`` of ``ctx.batch_size`` examples weighted by
their share, ``L = sum_c (|c| / N) L_c``, so the sums are exact. Hessian-vector
products are back-over-back (nested ``GradientTape``), vectorised over a batch
of ``k`` probe vectors; one compiled step serves GraSP's single product and
OBD's probes. The probes themselves (Rademacher for Hutchinson's estimator,
the standard basis for the exact diagonal) serve OBD.

Source: Pearlmutter 1994, "Fast exact multiplication by the Hessian";
Hutchinson 1989, "A stochastic estimator of the trace of the influence matrix".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from measures._base import MeasureContext, Param
from measures._cache import compiled_step
from measures._utils import ZERO, chunks, expected_pfor_fallback

PROBES_PER_STEP = 16


def _mean_loss(model, loss, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``(1/B) sum_b loss(y_b, f(x_b))`` over a chunk, in inference mode; ``loss.call`` is any Keras loss, unreduced."""
    return tf.reduce_mean(loss.call(y, model(x, training=False)))


def _batched_dot(z: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """``<z_i, g>`` for each probe ``z_i`` of ``z`` (shape ``(k, *g.shape)``), shape ``(k,)``."""
    return tf.reduce_sum(tf.reshape(z * g[None], (tf.shape(z)[0], -1)), axis=1)


def _gradient_step(model, params, loss) -> Callable:
    """Compiled ``step(x, y)``: ``dL_c/dtheta`` on a chunk, one tensor per parameter."""
    variables = [p.variable for p in params]

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            mean = _mean_loss(model, loss, x, y)
        return tape.gradient(mean, variables, unconnected_gradients=ZERO)

    return step


def _hvp_step(model, params, loss) -> Callable:
    """Compiled ``step(x, y, probes)``: ``H_c z_i`` for each probe, one ``(k, *shape)`` tensor per parameter.

    ``probes`` holds one ``(k, *shape)`` tensor per parameter: probe ``i`` is
    ``z_i = (probes[0][i], probes[1][i], ...)``.
    """
    variables = [p.variable for p in params]

    @tf.function(reduce_retracing=True)
    def step(x, y, probes):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                mean = _mean_loss(model, loss, x, y)
            grads = inner.gradient(mean, variables, unconnected_gradients=ZERO)
            dots = tf.add_n([_batched_dot(z, g) for z, g in zip(probes, grads, strict=True)])
        with expected_pfor_fallback():
            return outer.jacobian(dots, variables, unconnected_gradients=ZERO, experimental_use_pfor=True)

    return step


def _chunk_weighted_sum(ctx: MeasureContext, step: Callable, x: np.ndarray, y: np.ndarray, *extra) -> list[np.ndarray]:
    """``sum_c (|c| / |x|) step(x_c, y_c, *extra)`` over chunks ``c`` of ``ctx.batch_size`` examples, float64."""
    totals = [np.zeros(p.shape, np.float64) for p in ctx.params]
    for x_chunk, y_chunk in chunks((x, y), ctx.batch_size):
        share = len(x_chunk) / len(x)
        totals = [t + share * s.numpy() for t, s in zip(totals, step(x_chunk, y_chunk, *extra), strict=True)]
    return totals


def mean_loss_gradient(ctx: MeasureContext, index: np.ndarray | None = None) -> list[np.ndarray]:
    """Return ``g = dL/dtheta`` per parameter, float64, ``L`` the MEAN loss over the examples ``index`` (default all).

    ``L = (1/|S|) sum_{n in S} loss(y_n, f(x_n))``; one backward pass per chunk.
    """
    x, y = ctx.x, np.asarray(ctx.y, np.float32)
    if index is not None:
        x, y = x[index], y[index]
    return _chunk_weighted_sum(ctx, compiled_step(ctx, "gradient", _gradient_step, tuple(ctx.params)), x, y)


def hessian_vector_product(ctx: MeasureContext, vector: list[np.ndarray]) -> list[np.ndarray]:
    """Return ``H v`` per parameter, float64, ``H`` the Hessian of the MEAN loss over the whole sample.

    ``vector`` holds one array per parameter, shaped like it: one probe.
    """
    step = compiled_step(ctx, "hvp", _hvp_step, tuple(ctx.params))
    probe = [tf.constant(np.asarray(a, np.float32)[None]) for a in vector]
    return [h[0] for h in _chunk_weighted_sum(ctx, step, ctx.x, np.asarray(ctx.y, np.float32), probe)]


def hessian_probe_sum(ctx: MeasureContext, probes: Iterator[list[np.ndarray]]) -> list[np.ndarray]:
    """Return ``sum_i z_i * (H z_i)`` (elementwise) per parameter, float64, ``H`` as in :func:`hessian_vector_product`.

    ``probes`` yields batches of probe vectors, one ``(k, *shape)`` array per parameter.
    """
    step = compiled_step(ctx, "hvp", _hvp_step, tuple(ctx.params))
    y = np.asarray(ctx.y, dtype=np.float32)
    totals = [np.zeros(p.shape, np.float64) for p in ctx.params]
    for batch in probes:
        z = [tf.constant(b) for b in batch]
        for x_chunk, y_chunk in chunks((ctx.x, y), ctx.batch_size):
            share = len(x_chunk) / len(ctx.x)
            sums = [tf.reduce_sum(zi * h, axis=0) for zi, h in zip(z, step(x_chunk, y_chunk, z), strict=True)]
            totals = [t + share * s.numpy() for t, s in zip(totals, sums, strict=True)]
    return totals


def rademacher_probes(params: list[Param], samples: int, seed: int) -> Iterator[list[np.ndarray]]:
    """Yield ``samples`` seeded Rademacher (+-1) probes, in batches of ``PROBES_PER_STEP``."""
    rng = np.random.default_rng(seed)
    for start in range(0, samples, PROBES_PER_STEP):
        k = min(PROBES_PER_STEP, samples - start)
        yield [(2 * rng.integers(0, 2, (k, *p.shape)) - 1).astype(np.float32) for p in params]


def basis_probes(params: list[Param]) -> Iterator[list[np.ndarray]]:
    """Yield every standard basis vector of the concatenated parameters, so ``sum_i e_i * (H e_i) = diag(H)``."""
    sizes = [int(np.prod(p.shape)) for p in params]
    total = sum(sizes)
    for start in range(0, total, PROBES_PER_STEP):
        k = min(PROBES_PER_STEP, total - start)
        rows = np.zeros((k, total), np.float32)
        rows[np.arange(k), start + np.arange(k)] = 1.0
        pieces = np.split(rows, np.cumsum(sizes)[:-1], axis=1)
        yield [piece.reshape(k, *p.shape) for piece, p in zip(pieces, params, strict=True)]


def parameter_count(params: list[Param]) -> int:
    """Total number of scalars in ``params``."""
    return sum(int(np.prod(p.shape)) for p in params)

