"""Per-example gradients, transformed and averaged over a sample, with no Python loop over examples.

    per_example_mean = (1/N) sum_n sum_k transform(d t_nk / d theta),   t_n = terms_fn(loss, f(x_n), *extra_n)

Two paths, picked per parameter:

- layer taps (fast): kernels and biases of plain Dense/Conv1D/Conv2D layers and
  BatchNormalization's gamma and beta; the gradient of each term with respect
  to each layer's OUTPUT, per example (K backward passes over a chunk), is
  combined with the layer's input (``measures/_layer_grads.py``);
- pfor (general): each example's gradient materialised by
  ``tf.vectorized_map``; any other parameter, or every parameter of a model
  that is not functional. :func:`pfor_step` is also the reference the fast
  path is benchmarked and tested against.

Source: per-example gradients from layer inputs and output gradients as in
BackPACK (Dangel et al. 2020, "BackPACK: packing more into backprop", ICLR).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from measures import _layer_grads
from measures._base import CONV_TRANSPOSE, MeasureContext, Param
from measures._cache import COMPILED, compiled_step
from measures._losses import fisher_terms, likelihood, log_likelihood, output_size, targets
from measures._utils import ZERO, chunks, expected_pfor_fallback

TAPPED_LAYERS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)


def _any_batch(arrays: tuple[np.ndarray, ...]) -> tuple[tf.TensorSpec, ...]:
    """Specs of chunks of ``arrays`` with any number of rows, so a step traced on them serves every chunk."""
    return tuple(tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)) for a in arrays)


def pfor_step(model, params, loss, terms_fn, transform) -> Callable:
    """Generic path: each example's gradient materialised by ``tf.vectorized_map``, then transformed and summed.

    Returns a compiled ``step(chunk)``: ``chunk = (x, *extra)`` holds ``B``
    rows of each array, and the step returns ``sum_{n,k} transform(d t_nk /
    d theta)`` over the chunk, one tensor per parameter of ``params``, shaped
    like it (divide by ``N`` after summing the chunks for the mean).

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
        with expected_pfor_fallback():
            per_example = tf.vectorized_map(one, chunk) if vectorize else \
                tf.map_fn(one, chunk, fn_output_signature=signature)
        return [tf.reduce_sum(g, axis=0) for g in per_example]

    return step


def _tappable(param: Param) -> bool:
    """Kernel or bias of a plain, channels-last, ungrouped Dense/Conv1D/Conv2D layer called once; or BN gamma/beta."""
    if _layer_grads.bn_tappable(param):
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
        stats = [_layer_grads.layer_sums(layer, seen[f"a{i}"], outputs[i], grads[i], transform)
                 for i, layer in enumerate(layers)]
        return [stats[layers.index(p.layer)][_layer_grads.slot(p)] for p in params]

    return step


def split(ctx: MeasureContext) -> tuple[list[Param], list[Param]]:
    """Parameters for the fast (tapped layer) path and for the generic per-example path."""
    tapped = [p for p in ctx.params if _tappable(p)]
    layers = list(dict.fromkeys(p.layer for p in tapped))
    if not tapped or COMPILED.get(("tap_model", id(ctx.model), *map(id, layers)), (ctx.model, layers),
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
    examples. Parameters the layer taps reach (see ``_tappable``) take the
    fast path; for a Dense layer on 2-D input, ``transform(a)^T
    transform(g)``, so no per-example gradient is materialised. Other
    parameters, or models that are not functional, take :func:`pfor_step`.
    Each step is traced once, for any chunk size (a shorter last chunk does
    not retrace).
    """
    fast, slow = split(ctx)
    steps = [(group, compiled_step(ctx, kind, build, tuple(group), terms_fn, transform))
             for kind, build, group in (("taps", _tap_step, fast), ("pfor", pfor_step, slow)) if group]
    for _, step in steps:
        step.get_concrete_function(_any_batch((ctx.x, *extra)))
    totals = {id(p): np.zeros(p.shape, np.float64) for p in ctx.params}
    for chunk in chunks((ctx.x, *extra), max(1, ctx.batch_size // n_terms)):
        for group, step in steps:
            for p, s in zip(group, step(chunk), strict=True):
                totals[id(p)] += s.numpy()
    return [(totals[id(p)] / len(ctx.x)).astype(np.float32) for p in ctx.params]


def fisher_diagonal(ctx: MeasureContext, kind: str) -> list[np.ndarray]:
    """Diagonal Fisher, mean over examples: ``"empirical"`` (labels ``ctx.y``) or ``"true"`` (exact expectation)."""
    n_out = output_size(ctx)
    if kind == "true":
        likelihood(ctx.loss)
        return per_example_mean(ctx, fisher_terms, n_terms=n_out)
    return per_example_mean(ctx, log_likelihood, (targets(ctx.loss, ctx.y, n_out),))

