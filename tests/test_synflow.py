"""SynFlow against the explicit product of |W| (tiny MLP), an explicit numpy forward (tiny CNN) and the authors' recipe."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model

TOL = dict(rtol=1e-6, atol=1e-12)


def score(model, prunable="kernels+biases", x=None):
    x = np.zeros((2, *model.input_shape[1:]), np.float32) if x is None else x
    params = prunable_params(model, prunable)
    return params, make_measure("synflow").score(MeasureContext(model, params, x, np.zeros(len(x)), None))


def test_tiny_mlp_equals_the_explicit_product_of_absolute_weights():
    model = tiny_dense_model()  # tanh hidden layer: linearised
    w1, b1, w2, b2 = (np.abs(w.astype(np.float64)) for w in model.get_weights())
    h1 = w1.sum(axis=0) + b1  # 1^T |W1| + |b1|
    flow = (h1 @ w2 + b2).sum()  # R = 1^T (h1 |W2| + |b2|)
    down = w2.sum(axis=1)  # dR/dh1 = |W2| 1
    expected = [w1 * down[None, :], b1 * down, w2 * h1[:, None], b2]
    _, scores = score(model)
    for s, e in zip(scores, expected, strict=True):
        assert s.dtype == np.float32
        np.testing.assert_allclose(s, e / flow, **TOL)


def test_without_biases_each_layer_conserves_the_flow():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, activation="sigmoid", use_bias=False)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, use_bias=False)(keras.layers.Dense(6, use_bias=False)(hidden)))
    w = [np.abs(v.astype(np.float64)) for v in model.get_weights()]
    flow = np.ones(5) @ w[0] @ w[1] @ w[2] @ np.ones(3)  # R = 1^T |W1| |W2| |W3| 1
    expected = w[1] * np.outer(np.ones(5) @ w[0], w[2] @ np.ones(3)) / flow
    _, scores = score(model, "kernels")
    np.testing.assert_allclose(scores[1], expected, **TOL)
    np.testing.assert_allclose([s.sum() for s in scores], 1.0, rtol=1e-6)


def numpy_flow(model, values):
    """R of tiny_conv_model's linear skeleton by explicit loops: conv 3x3 same, conv 2x2 stride 2 valid, dense."""
    k1, c1, k2, c2, k3, c3 = values
    h = np.pad(np.ones((7, 7, 2)), ((1, 1), (1, 1), (0, 0)))
    h = np.array([[np.tensordot(h[i:i + 3, j:j + 3], k1, 3) + c1 for j in range(7)] for i in range(7)])
    h = np.array([[np.tensordot(h[i:i + 2, j:j + 2], k2, 3) + c2 for j in range(0, 6, 2)] for i in range(0, 6, 2)])
    return float((h.reshape(-1) @ k3 + c3).sum())


@pytest.mark.slow
def test_tiny_cnn_equals_an_explicit_forward_differentiated_exactly():
    model = tiny_conv_model()
    values = [np.abs(w.astype(np.float64)) for w in model.get_weights()]
    flow = numpy_flow(model, values)
    _, scores = score(model)
    for k, s in enumerate(scores):
        grad = np.zeros(values[k].size)
        for e in range(values[k].size):  # R is affine in each parameter: dR/dp = R(p=1) - R(p=0), exactly
            ends = []
            for p in (1.0, 0.0):
                changed = [v.copy() for v in values]
                changed[k].flat[e] = p
                ends.append(numpy_flow(model, changed))
            grad[e] = ends[0] - ends[1]
        np.testing.assert_allclose(s, values[k] * grad.reshape(values[k].shape) / flow, rtol=1e-6, atol=1e-12)


def relu_bn_pool_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, activation="relu", bias_initializer="random_normal")(inputs)
    h = keras.layers.BatchNormalization(beta_initializer="random_normal", gamma_initializer="random_normal")(h)
    h = keras.layers.MaxPooling2D(2)(keras.layers.ReLU()(h))
    h = keras.layers.Dense(4, activation="relu")(keras.layers.Dropout(0.5)(keras.layers.Flatten()(h)))
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    bn = model.layers[2]
    bn.moving_mean.assign(np.random.default_rng(0).standard_normal(3) * 0.1)
    bn.moving_variance.assign(np.random.default_rng(1).uniform(0.5, 2.0, 3))
    return model


@pytest.mark.slow
def test_relu_batchnorm_pooling_follow_the_authors_recipe():
    """Their code: every state entry to |.|, eval mode, sum of the outputs on ones, |grad * param|."""
    model = relu_bn_pool_model()
    copy = keras.models.clone_model(model)
    copy.set_weights([np.abs(w) for w in model.get_weights()])
    with tf.GradientTape() as tape:
        flow = tf.reduce_sum(copy(tf.ones((1, 6, 6, 2)), training=False))
    grads = tape.gradient(flow, copy.trainable_variables)
    params, scores = score(model, "all")
    assert len(params) == len(copy.trainable_variables) == 8
    for s, v, g in zip(scores, copy.trainable_variables, grads, strict=True):
        np.testing.assert_allclose(s, np.abs(v.numpy() * g.numpy()) / flow.numpy(), rtol=1e-4, atol=1e-9)


@pytest.mark.slow
def test_data_free_and_weights_untouched():
    model = tiny_conv_model()
    before = [w.copy() for w in model.get_weights()]
    first = score(model, x=random_data(model, n=4, seed=1)[0])[1]
    second = score(model, x=random_data(model, n=9, seed=2)[0])[1]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_unsupported_models_are_refused():
    inputs = keras.Input((4,))
    norm = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LayerNormalization(name="ln")(inputs)))
    with pytest.raises(ValueError, match=r"synflow supports layers \[.*'Dense'.*\]. Received: layer 'ln' of type "
                                         r"LayerNormalization"):
        score(norm)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="functional or Sequential model with one fixed-shape input"):
        score(sub, x=np.zeros((2, 4), np.float32))
