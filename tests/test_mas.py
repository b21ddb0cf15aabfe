"""Reference tests for Memory Aware Synapses: a per-example GradientTape loop on tiny models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import Subclassed, random_data, tiny_conv_model, tiny_dense_model

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def score(model, x, y, batch_size=8):
    params = prunable_params(model, "kernels+biases")
    return params, make_measure("mas").score(MeasureContext(model, params, x, y, LOSS, seed=0, batch_size=batch_size))


def loop_mas(model, variables, x):
    """(1/N) sum_n |d ||f(x_n)||^2 / d theta|, one example at a time."""
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            norm = tf.reduce_sum(tf.square(model(x[n:n + 1], training=False)))
        for t, g in zip(total, tape.gradient(norm, variables), strict=True):
            t += np.abs(g.numpy())
    return [t / len(x) for t in total]


@pytest.mark.slow
@pytest.mark.parametrize("model_fn", [tiny_dense_model, tiny_conv_model], ids=["dense", "conv"])
def test_mas_matches_per_example_loop(model_fn):
    model = model_fn(seed=0)
    x, y = random_data(model, n=20, seed=2)
    params, scores = score(model, x, y)
    expected = loop_mas(model, [p.variable for p in params], x)
    for s, e, p in zip(scores, expected, params, strict=True):
        assert s.shape == p.shape and s.dtype == np.float32
        np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-6)


def test_abs_is_taken_per_example():
    model = tiny_dense_model(seed=0)
    x, y = random_data(model, n=20, seed=2)
    params, scores = score(model, x, y)
    with tf.GradientTape() as tape:
        mean_norm = tf.reduce_mean(tf.reduce_sum(tf.square(model(x, training=False)), axis=-1))
    batch = [np.abs(g.numpy()) for g in tape.gradient(mean_norm, [p.variable for p in params])]
    assert not np.allclose(scores[0], batch[0], rtol=0.1)
    assert all(np.all(s >= b - 1e-5) for s, b in zip(scores, batch, strict=True))  # triangle inequality


@pytest.mark.slow
def test_labels_are_not_read():
    model = tiny_dense_model(seed=0)
    x, y = random_data(model, n=12, seed=2)
    _, first = score(model, x, y)
    _, other = score(model, x, (y + 1) % 3)
    for a, b in zip(first, other, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_weights_untouched():
    model = tiny_conv_model(seed=0)
    x, y = random_data(model, n=12, seed=2)
    before = [w.copy() for w in model.get_weights()]
    score(model, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.slow
def test_subclassed_model_matches_loop():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    x = np.random.default_rng(3).standard_normal((20, 6)).astype(np.float32)
    model(x[:1])
    params, scores = score(model, x, np.zeros(20, int))
    for s, e in zip(scores, loop_mas(model, [p.variable for p in params], x), strict=True):
        np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-6)
