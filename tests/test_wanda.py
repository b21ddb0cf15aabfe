"""Wanda against per-datapoint loops (the MAAV references on squared inputs), its norm options and per-output pruning."""

import keras
import numpy as np
import pytest

from aggregations import get_aggregation
from harness.thresholding.threshold import Thresholder
from measures import MeasureContext, make_measure, prunable_params
from measures.wanda import Wanda
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model
from tests.test_maav import conv2d_reference, dense_reference, head, inputs_one_by_one

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
MODELS = {
    "tiny_dense": tiny_dense_model,
    "tiny_conv": tiny_conv_model,
    "groups2-stride2": lambda: head((7, 6, 4), keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=2)),
    "dense-on-sequence": lambda: head((4, 3), keras.layers.Dense(2)),
}


def context(model, n=10):
    x, y = random_data(model, n=n, seed=3)
    return MeasureContext(model, prunable_params(model, "kernels+biases"), x, y, LOSS, batch_size=4)


def mean_square_and_positions(param, inputs):
    """Loop reference of mean_{n, position} x^2 per kernel entry (MAAV's loops with |W| = 1 on x^2), and P."""
    if param.kind == "dense":
        rows = inputs.reshape(len(inputs), -1, param.shape[0])
        return dense_reference(inputs**2, np.ones(param.shape)), rows.shape[1]
    cfg = param.layer.get_config()
    squares = conv2d_reference(inputs**2, np.ones(param.shape), cfg["strides"], cfg["dilation_rate"], cfg["padding"],
                               cfg["groups"])
    return squares, int(np.prod(param.layer.output.shape[1:-1]))


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["rms", "l2"])
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_loop_reference(name, norm):
    keras.utils.set_random_seed(7)
    ctx = context(MODELS[name]())
    recorded = inputs_one_by_one(ctx.model, ctx.x)
    scores = make_measure(f"wanda:norm={norm}").score(ctx)
    for s, p in zip(scores, ctx.params, strict=True):
        kernel = next(q for q in ctx.params if q.layer is p.layer and q.role == "kernel")
        squares, positions = mean_square_and_positions(kernel, recorded[p.layer.name])
        scale = len(ctx.x) * positions if norm == "l2" else 1.0
        value = np.abs(p.variable.numpy().astype(np.float64))
        expected = value * np.sqrt(scale * squares) if p.role == "kernel" else value * np.sqrt(scale)
        assert s.dtype == np.float32 and s.shape == p.shape
        np.testing.assert_allclose(s, expected, rtol=1e-5, atol=1e-7, err_msg=p.name)


def test_differs_from_maav_by_rms_versus_mean_absolute_input():
    """Two inputs with equal mean |x| = 1: x_0 = +-1 always, x_1 = 8 once in 8 examples; rms 1 and sqrt(8)."""
    model = head((2,), keras.layers.Dense(1, kernel_initializer="ones", use_bias=False))
    x = np.stack([np.resize([1.0, -1.0], 8), np.eye(8)[0] * 8], axis=1).astype(np.float32)
    ctx = MeasureContext(model, prunable_params(model)[:1], x, np.zeros(8), LOSS)
    np.testing.assert_allclose(make_measure("maav").score(ctx)[0][:, 0], [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(make_measure("wanda").score(ctx)[0][:, 0], [1.0, np.sqrt(8.0)], rtol=1e-6)


def test_output_scope_reproduces_wandas_per_output_pruning():
    ctx = context(tiny_dense_model(n_in=12, n_hidden=7), n=16)
    ctx.params = ctx.params[::2]  # kernels only, as in the paper
    scores = make_measure("wanda").score(ctx)
    masks = Thresholder(get_aggregation("weight")(ctx.params, scores), "output", seed=0).masks(0.5)
    for s, m in zip(scores, masks, strict=True):
        keep = s.shape[0] - round(0.5 * s.shape[0])
        expected = np.ones(s.shape, bool)
        np.put_along_axis(expected, np.argsort(s, axis=0)[-keep:], False, axis=0)  # each output keeps its top inputs
        np.testing.assert_array_equal(m, expected)


def test_invalid_norm_is_quoted():
    with pytest.raises(ValueError, match=r"norm must be one of \['rms', 'l2'\]. Received: norm='l1'"):
        Wanda(norm="l1")
