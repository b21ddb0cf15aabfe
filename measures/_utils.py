"""Shared numerics for measures: the likelihood a loss stands for, per-example gradients, Hessian probes.

Everything here is a MEAN over the ``N`` examples of the importance sample,
computed in chunks in inference mode (``training=False``), and reads the
model's variables without writing them. Per-example gradients never loop in
Python: Dense/Conv kernels and biases and BatchNormalization's gamma and beta
come from per-example gradients of each layer's output (BackPACK-style, see
``measures/_layer_grads.py``), anything else from ``tf.vectorized_map``.

Compiled (``tf.function``) steps are cached per model, variables, loss and
step kind, so scoring after every epoch traces once per run, not per epoch.
The cache keeps the last few entries only.

The last sections serve the pruning criteria: the gradient and a
Hessian-vector product of the mean loss (SNIP, Taylor, GraSP), per-feature
input statistics laid over kernels (Wanda) and SynFlow's data-free flow
through the absolute-value network.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from measures import _layer_grads
from measures._base import CONV_TRANSPOSE, MeasureContext, Param
from measures._layer_inputs import unfold

SOFTMAX_LOSSES = (keras.losses.SparseCategoricalCrossentropy, keras.losses.CategoricalCrossentropy)
GAUSSIAN_LOSSES = (keras.losses.MeanSquaredError,)
TAPPED_LAYERS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)
ZERO = tf.UnconnectedGradients.ZERO
PROBES_PER_STEP = 16
_MAX_CACHED = 8
_cache: dict = {}
_fast_layers = [True]  # False: the earlier routing (see legacy_layer_paths), for benchmarks and reference tests


# --- The likelihood behind a loss ------------------------------------------------------------------------------------


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


# --- Per-example gradients -------------------------------------------------------------------------------------------


def _cached(key: tuple, keep: tuple, build: Callable) -> Callable:
    """Return the step cached under ``key`` (ids of the objects in ``keep``, held so ids stay unique)."""
    if key not in _cache:
        while len(_cache) >= _MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (keep, build())
    return _cache[key][1]


def _step(ctx: MeasureContext, kind: str, build: Callable, params: tuple, *extra) -> Callable:
    """The compiled step ``build(model, params, loss, *extra)``, cached."""
    keep = (ctx.model, params, ctx.loss)
    key = (kind, _fast_layers[0], id(ctx.model), tuple(map(id, params)), id(ctx.loss), *extra)
    return _cached(key, keep, lambda: build(ctx.model, list(params), ctx.loss, *extra))


def _any_batch(arrays: tuple[np.ndarray, ...]) -> tuple[tf.TensorSpec, ...]:
    """Specs of chunks of ``arrays`` with any number of rows, so a step traced on them serves every chunk."""
    return tuple(tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)) for a in arrays)


def _chunks(arrays: tuple[np.ndarray, ...], size: int) -> Iterator[tuple[tf.Tensor, ...]]:
    for start in range(0, len(arrays[0]), size):
        yield tuple(tf.constant(a[start:start + size]) for a in arrays)


@contextlib.contextmanager
def _expected_pfor_fallback():
    """Silence pfor's "Conv2DBackpropFilter uses a while_loop" warning while tracing.

    Per-example conv filter gradients run as an in-graph loop by design (still
    no Python loop); the warning would otherwise repeat at every trace.
    """
    quiet = logging.Filter()
    quiet.filter = lambda record: "uses a while_loop" not in record.getMessage()
    tf.get_logger().addFilter(quiet)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(quiet)


def _pfor_step(model, params, loss, terms_fn, transform):
    """Generic path: each example's gradient materialised by ``tf.vectorized_map``, then transformed and summed.

    Gradients of ``EinsumDense`` kernels (attention projections) are not vectorised: TensorFlow 2.21's pfor
    of them aborts the process in its oneDNN build ("double free or corruption"), so those parameters loop over the
    chunk's examples in the graph (``tf.map_fn``; no Python loop), slower but exact.
    """
    variables = [p.variable for p in params]
    vectorize = not any(p.kind == "einsum" for p in params)

    def one(example):
        with tf.GradientTape() as tape:
            outputs = model(example[0][None], training=False)
            terms = terms_fn(loss, outputs, *[e[None] for e in example[1:]])[0]
            first = terms[0]
        if terms.shape[0] == 1:
            return [transform(g) for g in tape.gradient(first, variables, unconnected_gradients=ZERO)]
        jac = tape.jacobian(terms, variables, unconnected_gradients=ZERO, experimental_use_pfor=vectorize)
        return [tf.reduce_sum(transform(j), axis=0) for j in jac]

    signature = [tf.TensorSpec(v.shape, tf.float32) for v in variables]

    @tf.function(reduce_retracing=True)
    def step(chunk):
        with _expected_pfor_fallback():
            per_example = tf.vectorized_map(one, chunk) if vectorize else \
                tf.map_fn(one, chunk, fn_output_signature=signature)
        return [tf.reduce_sum(g, axis=0) for g in per_example]

    return step


@contextlib.contextmanager
def legacy_layer_paths():
    """Use the earlier per-layer routing within this block (kept to benchmark and test the fast paths).

    BatchNormalization goes through ``tf.vectorized_map``, conv kernels use
    unfolded inputs, pre-activations are recomputed, and a shorter last chunk
    retraces the step.
    """
    _fast_layers[0] = False
    try:
        yield
    finally:
        _fast_layers[0] = True


def _tappable(param: Param) -> bool:
    """Kernel or bias of a plain, channels-last, ungrouped Dense/Conv1D/Conv2D layer called once; or BN gamma/beta."""
    if _fast_layers[0] and _layer_grads.bn_tappable(param):
        return True
    layer = param.layer
    return (
        param.role in ("kernel", "bias") and isinstance(layer, TAPPED_LAYERS)
        and not isinstance(layer, CONV_TRANSPOSE) and getattr(layer, "groups", 1) == 1
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and getattr(layer, "padding", "valid") != "causal"
        and not getattr(layer, "lora_enabled", False) and getattr(layer, "quantization_mode", None) is None
        and len(getattr(layer, "_inbound_nodes", ())) == 1
    )


def _tap_model(model: keras.Model, layers: list) -> keras.Model | None:
    """Map the model's input to its output and each layer's input ``a<i>`` and output ``y<i>``; None if impossible."""
    try:
        taps = {f"{name}{i}": getattr(layer, attr) for i, layer in enumerate(layers)
                for name, attr in (("a", "input"), ("y", "output"))}
        return keras.Model(model.inputs, {"out": model.outputs[0], **taps})
    except (AttributeError, TypeError, ValueError):  # subclassed model, nested or shared layer
        return None


def _preactivation_grads(layer, a: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Back-propagate ``dy`` (K, B, ..., out) through the layer's activation, at its recomputed pre-activation."""
    z = layer.convolution_op(a, layer.kernel) if hasattr(layer, "convolution_op") else tf.matmul(a, layer.kernel)
    z = z + layer.bias if layer.bias is not None else z
    z = tf.broadcast_to(z[None], tf.shape(dy))
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = layer.activation(z) if layer.activation is not None else z
    return tape.gradient(y, z, output_gradients=dy)


def _layer_sums(layer, a: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, transform: Callable) -> dict:
    """Return ``sum_{n,k} transform(d t_nk / d theta)`` for the layer's kernel and bias (BN: gamma and beta).

    Where the input has one position the per-example kernel gradient is an
    outer product and ``transform(xy) = transform(x) transform(y)`` gives the
    sum as one matmul (BackPACK's trick); conv kernels take one batched matmul
    per kernel offset (``_layer_grads.conv_kernel_sums``); otherwise
    per-example gradients are an einsum over positions of unfolded inputs and
    output gradients.
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        return _layer_grads.bn_sums(layer, a, dy, transform)
    fast_dz = _layer_grads.activation_grads(layer, y, dy) if _fast_layers[0] else None
    dz = _preactivation_grads(layer, a, dy) if fast_dz is None else fast_dz
    if _fast_layers[0] and hasattr(layer, "convolution_op"):
        bias = tf.reduce_sum(transform(tf.reduce_sum(dz, axis=list(range(2, len(dz.shape) - 1)))), axis=[0, 1])
        return {"kernel": _layer_grads.conv_kernel_sums(layer, a, dz, transform), "bias": bias}
    rows = unfold(layer, a)  # (B, P, F)
    dz = tf.reshape(dz, (tf.shape(dz)[0], tf.shape(rows)[0], -1, dz.shape[-1]))  # (K, B, P, out)
    bias = tf.reduce_sum(transform(tf.reduce_sum(dz, axis=2)), axis=[0, 1])
    if isinstance(layer, keras.layers.Dense) and len(a.shape) == 2:  # one position, known statically
        kernel = tf.matmul(transform(a), tf.reduce_sum(transform(dz[:, :, 0]), axis=0), transpose_a=True)
    else:
        kernel = tf.reduce_sum(transform(tf.einsum("bpf,kbpo->kbfo", rows, dz)), axis=[0, 1])
    return {"kernel": tf.reshape(kernel, layer.kernel.shape), "bias": bias}


def _slot(param: Param) -> str:
    """Key of ``param`` in its layer's sums: its role, or ``gamma``/``beta`` for BatchNormalization."""
    return _layer_grads.bn_slot(param) if isinstance(param.layer, keras.layers.BatchNormalization) else param.role


def _tap_step(model, params, loss, terms_fn, transform):
    """Fast path: per-example gradients of each tapped layer's output (K backward passes over the chunk)."""
    layers = list(dict.fromkeys(p.layer for p in params))
    taps = _tap_model(model, layers)

    @tf.function(reduce_retracing=True)
    def step(chunk):
        with tf.GradientTape() as tape:
            seen = taps(chunk[0], training=False)
            sums = tf.reduce_sum(terms_fn(loss, seen["out"], *chunk[1:]), axis=0)  # (K,): examples are independent
            first = sums[0]
        outputs = [seen[f"y{i}"] for i in range(len(layers))]
        if sums.shape[0] == 1:
            grads = [g[None] for g in tape.gradient(first, outputs, unconnected_gradients=ZERO)]
        else:
            grads = tape.jacobian(sums, outputs, unconnected_gradients=ZERO, experimental_use_pfor=True)
        stats = [_layer_sums(layer, seen[f"a{i}"], outputs[i], grads[i], transform) for i, layer in enumerate(layers)]
        return [stats[layers.index(p.layer)][_slot(p)] for p in params]

    return step


def _split(ctx: MeasureContext) -> tuple[list[Param], list[Param]]:
    """Parameters for the fast (tapped layer) path and for the generic per-example path."""
    tapped = [p for p in ctx.params if _tappable(p)]
    layers = list(dict.fromkeys(p.layer for p in tapped))
    if not tapped or _cached(("tap_model", id(ctx.model), *map(id, layers)), (ctx.model, layers),
                             lambda: _tap_model(ctx.model, layers)) is None:
        return [], list(ctx.params)
    return tapped, [p for p in ctx.params if not _tappable(p)]


def per_example_mean(
    ctx: MeasureContext, terms_fn: Callable, extra: tuple = (), transform: Callable = tf.square, n_terms: int = 1,
) -> list[np.ndarray]:
    """Return ``(1/N) sum_n sum_k transform(d t_nk / d theta)`` per parameter, float32.

    ``t_n = terms_fn(ctx.loss, f(x_n), *extra_n)``, shape ``(1, n_terms)``, must
    depend on example ``n`` only; ``terms_fn`` should be a module-level
    function (it keys the cache) and ``transform`` multiplicative
    (``tf.square``, ``tf.abs``). Chunks of ``ctx.batch_size // n_terms``
    examples. Kernels and biases of Dense/Conv layers (see ``_tappable``) take
    the fast path: the gradient w.r.t. each layer's output per example and
    term (K backward passes over the chunk), combined with the layer input;
    for a Dense layer on 2-D input, ``transform(a)^T transform(g)``, so no
    per-example gradient is materialised. Other parameters, or models that are
    not functional, take ``tf.vectorized_map`` over examples. Each step is
    traced once, for any chunk size (a shorter last chunk does not retrace).
    """
    fast, slow = _split(ctx)
    steps = [(group, _step(ctx, kind, build, tuple(group), terms_fn, transform))
             for kind, build, group in (("taps", _tap_step, fast), ("pfor", _pfor_step, slow)) if group]
    if _fast_layers[0]:
        for _, step in steps:
            step.get_concrete_function(_any_batch((ctx.x, *extra)))
    totals = {id(p): np.zeros(p.shape, np.float64) for p in ctx.params}
    for chunk in _chunks((ctx.x, *extra), max(1, ctx.batch_size // n_terms)):
        for group, step in steps:
            for p, s in zip(group, step(chunk), strict=True):
                totals[id(p)] += s.numpy()
    return [(totals[id(p)] / len(ctx.x)).astype(np.float32) for p in ctx.params]


def output_size(ctx: MeasureContext) -> int:
    """Size of the model's output's last axis (classes or regression targets), from one example."""
    return int(ctx.model(ctx.x[:1], training=False).shape[-1])


def fisher_diagonal(ctx: MeasureContext, kind: str) -> list[np.ndarray]:
    """Diagonal Fisher, mean over examples: ``"empirical"`` (labels ``ctx.y``) or ``"true"`` (exact expectation)."""
    n_out = output_size(ctx)
    if kind == "true":
        likelihood(ctx.loss)
        return per_example_mean(ctx, fisher_terms, n_terms=n_out)
    return per_example_mean(ctx, log_likelihood, (targets(ctx.loss, ctx.y, n_out),))


# --- Hessian probes --------------------------------------------------------------------------------------------------


def _batched_dot(z: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """``<z_i, g>`` for each probe ``z_i`` of ``z`` (shape ``(k, *g.shape)``), shape ``(k,)``."""
    return tf.reduce_sum(tf.reshape(z * g[None], (tf.shape(z)[0], -1)), axis=1)


def _hvp_step(model, params, loss):
    variables = [p.variable for p in params]

    @tf.function(reduce_retracing=True)
    def step(x, y, probes):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                mean = tf.reduce_mean(loss.call(y, model(x, training=False)))
            grads = inner.gradient(mean, variables, unconnected_gradients=ZERO)
            dots = tf.add_n([_batched_dot(z, g) for z, g in zip(probes, grads, strict=True)])
        with _expected_pfor_fallback():
            hz = outer.jacobian(dots, variables, unconnected_gradients=ZERO, experimental_use_pfor=True)
        return [tf.reduce_sum(z * h, axis=0) for z, h in zip(probes, hz, strict=True)]

    return step


def hessian_probe_sum(ctx: MeasureContext, probes: Iterator[list[np.ndarray]]) -> list[np.ndarray]:
    """Return ``sum_i z_i * (H z_i)`` (elementwise), ``H`` the Hessian of the MEAN loss over the sample.

    ``probes`` yields batches of probe vectors, one ``(k, *shape)`` array per
    parameter. Hessian-vector products are back-over-back (nested
    ``GradientTape``), vectorised over the ``k`` probes of a batch; the loss
    is ``ctx.loss.call`` (any Keras loss), averaged over the examples.
    """
    step = _step(ctx, "hvp", _hvp_step, tuple(ctx.params))
    y = np.asarray(ctx.y, dtype=np.float32)
    totals = [np.zeros(p.shape, np.float64) for p in ctx.params]
    for batch in probes:
        z = [tf.constant(b) for b in batch]
        for x_chunk, y_chunk in _chunks((ctx.x, y), ctx.batch_size):
            share = len(x_chunk) / len(ctx.x)
            totals = [t + share * s.numpy() for t, s in zip(totals, step(x_chunk, y_chunk, z), strict=True)]
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


# --- Gradient and Hessian-vector product of the mean loss (SNIP, Taylor, GraSP) -------------------------------------


def _mean_loss(model, loss, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``(1/B) sum_b loss(y_b, f(x_b))`` over a chunk, in inference mode; ``loss.call`` is any Keras loss, unreduced."""
    return tf.reduce_mean(loss.call(y, model(x, training=False)))


def _gradient_step(model, params, loss):
    variables = [p.variable for p in params]

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            mean = _mean_loss(model, loss, x, y)
        return tape.gradient(mean, variables, unconnected_gradients=ZERO)

    return step


def _hessian_vector_step(model, params, loss):
    variables = [p.variable for p in params]

    @tf.function(reduce_retracing=True)
    def step(x, y, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                mean = _mean_loss(model, loss, x, y)
            grads = inner.gradient(mean, variables, unconnected_gradients=ZERO)
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector, strict=True)])
        return outer.gradient(dot, variables, unconnected_gradients=ZERO)

    return step


def _chunk_weighted_sum(ctx: MeasureContext, step: Callable, x: np.ndarray, y: np.ndarray, *extra) -> list[np.ndarray]:
    """``sum_c (|c| / |x|) step(x_c, y_c, *extra)`` over chunks ``c`` of ``ctx.batch_size`` examples, float64."""
    totals = [np.zeros(p.shape, np.float64) for p in ctx.params]
    for x_chunk, y_chunk in _chunks((x, y), ctx.batch_size):
        share = len(x_chunk) / len(x)
        totals = [t + share * s.numpy() for t, s in zip(totals, step(x_chunk, y_chunk, *extra), strict=True)]
    return totals


def mean_loss_gradient(ctx: MeasureContext, index: np.ndarray | None = None) -> list[np.ndarray]:
    """Return ``g = dL/dtheta`` per parameter, float64, ``L`` the MEAN loss over the examples ``index`` (default all).

    ``L = (1/|S|) sum_{n in S} loss(y_n, f(x_n))`` with ``ctx.loss.call`` (any
    Keras loss), in inference mode; one backward pass per chunk of
    ``ctx.batch_size`` examples, chunks weighted by their share of ``S``.
    """
    x, y = ctx.x, np.asarray(ctx.y, np.float32)
    if index is not None:
        x, y = x[index], y[index]
    return _chunk_weighted_sum(ctx, _step(ctx, "gradient", _gradient_step, tuple(ctx.params)), x, y)


def hessian_vector_product(ctx: MeasureContext, vector: list[np.ndarray]) -> list[np.ndarray]:
    """Return ``H v`` per parameter, float64, ``H`` the Hessian of the MEAN loss over the whole sample.

    ``vector`` holds one array per parameter. Back-over-back (nested
    ``GradientTape``), one Hessian-vector product per chunk, chunks weighted
    by their share of the sample; ``H = sum_c (|c| / N) H_c`` is exact.
    """
    step = _step(ctx, "hessian_vector", _hessian_vector_step, tuple(ctx.params))
    v = [tf.constant(np.asarray(a, np.float32)) for a in vector]
    return _chunk_weighted_sum(ctx, step, ctx.x, np.asarray(ctx.y, np.float32), v)


# --- Input statistics laid over kernels (Wanda) ----------------------------------------------------------------------


def spread_over_kernel(per_feature: np.ndarray, shape: tuple[int, ...], groups: int = 1) -> np.ndarray:
    """Lay a statistic of each unfolded input feature, shape ``(F,)``, over a kernel of ``shape``.

    ``F`` is ordered as :func:`measures._layer_inputs.unfold` orders it (all
    input channels); with ``groups`` > 1, output channel ``o`` reads the
    input channels of its group ``o // (cout / groups)``.
    """
    per_group = np.swapaxes(per_feature.reshape(*shape[:-2], groups, -1), -1, -2)
    return np.repeat(per_group, shape[-1] // groups, axis=-1)


# --- Synaptic flow through the absolute-value network (SynFlow) ----------------------------------------------------

FLOW_ACTIVATIONS = tuple(getattr(keras.layers, n) for n in "Activation ReLU LeakyReLU ELU Softmax".split())
FLOW_LAYERS = FLOW_ACTIVATIONS + tuple(getattr(keras.layers, n) for n in (
    "InputLayer Dense Conv1D Conv2D Flatten Reshape Permute Identity BatchNormalization Dropout SpatialDropout1D "
    "SpatialDropout2D Add Concatenate MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D ZeroPadding1D "
    "ZeroPadding2D ZeroPadding3D GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D "
    "GlobalMaxPooling2D").split())


def _is_relu(layer) -> bool:  # ReLU, linear, or no activation at all
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
    plain = not isinstance(layer, FLOW_ACTIVATIONS) or isinstance(layer, keras.layers.Activation)
    return plain and getattr(layer, "activation", None) in (None, keras.activations.relu, keras.activations.linear)


def _skeleton_layer(layer):  # the layer in float64; an activation other than ReLU becomes the identity
    if isinstance(layer, FLOW_ACTIVATIONS) and not _is_relu(layer):
        return keras.layers.Identity(name=layer.name, dtype="float64")
    linear = {} if _is_relu(layer) else {"activation": "linear"}
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float64", **linear})


def check_flow_model(model: keras.Model) -> None:
    """Raise the ValueError of :func:`absolute_flow` for a model it cannot run (checked before training)."""
    _check_flow_model(model)


def _check_flow_model(model: keras.Model) -> None:
    if not getattr(model, "inputs", None) or len(model.inputs) != 1 or None in model.input_shape[1:]:
        raise ValueError(f"synflow needs a functional or Sequential model with one fixed-shape input. Received: {model!r}")
    for layer in model.layers:
        if type(layer) not in FLOW_LAYERS:
            raise ValueError(f"synflow supports layers {sorted(c.__name__ for c in FLOW_LAYERS)}. "
                             f"Received: layer {layer.name!r} of type {type(layer).__name__}")


@functools.lru_cache(maxsize=4)
def _flow_step(model: keras.Model):
    """Compiled ``(R, dR/dtheta)`` of the model's float64 clone at given variable values; built once per model."""
    _check_flow_model(model)
    skeleton = keras.models.clone_model(model, clone_function=_skeleton_layer)
    if [v.path for v in skeleton.trainable_variables] != [v.path for v in model.trainable_variables]:
        raise ValueError(f"synflow could not clone {model.name!r} with its variables in the same order.")
    ones = tf.ones((1, *model.input_shape[1:]), tf.float64)

    @tf.function
    def step(trainable, non_trainable):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            flow = tf.reduce_sum(skeleton.stateless_call(trainable, non_trainable, ones, training=False)[0])
        return flow, tape.gradient(flow, trainable, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return step


def _absolute(variables) -> list:  # float variables as float64 absolute values; others (seed states) as they are
    return [np.abs(np.asarray(v.numpy(), np.float64)) if "float" in str(v.dtype) else v.numpy() for v in variables]


def absolute_flow(model: keras.Model) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Return ``R``, ``|theta|`` and ``dR/dtheta`` at ``|theta|`` (float64, per trainable variable), SynFlow's flow.

    ``R = 1^T f(1; |theta|)``: the model on one all-ones input, every float
    variable (trainable or not) replaced by its absolute value, in inference
    mode and float64, evaluated with ``stateless_call`` on a clone built once
    per model (the live model is not touched); ReLU is kept and any other
    activation becomes the identity.

    Raises:
        ValueError: subclassed model, several or variable-shape inputs, or a
            layer type outside :data:`FLOW_LAYERS`.
    """
    step = _flow_step(model)
    values = _absolute(model.trainable_variables)
    flow, grads = step(values, _absolute(model.non_trainable_variables))
    return float(flow), values, [g.numpy() for g in grads]
