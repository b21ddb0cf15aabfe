"""Fast per-example paths (BatchNormalization in inference mode, conv kernels by offset) against a GradientTape loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, _losses, _per_example, prunable_params

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def conv_bn_model():
    """Strided 'same' and dilated 'valid' conv with relu, BatchNorm on 4-D and 2-D inputs, like seed003_cnn."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 2))
    h = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", bias_initializer="random_normal")(inputs)
    h = keras.layers.BatchNormalization(beta_initializer="random_normal", moving_variance_initializer="ones")(h)
    h = keras.layers.Conv2D(4, 2, dilation_rate=2, activation="tanh")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Flatten()(h))
    h = keras.layers.BatchNormalization(gamma_initializer="random_normal")(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h)), (9, 9, 2)


def conv1d_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 2))
    h = keras.layers.Conv1D(3, 3, padding="same", strides=2, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(h))), (8, 2)


def set_moving_statistics(model, rng):
    """Non-trivial moving mean and variance, so inference-mode BatchNorm is not the identity."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.standard_normal(layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape).astype(np.float32))


def loop(model, variables, x, targets, transform):
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            term = _losses.log_likelihood(LOSS, model(x[n:n + 1], training=False), targets[n:n + 1])[0, 0]
        for t, g in zip(total, tape.gradient(term, variables), strict=True):
            t += transform(g).numpy()
    return [t / len(x) for t in total]


@pytest.mark.parametrize(("build", "transform"), [
    pytest.param(conv_bn_model, tf.square, id="bn-square", marks=pytest.mark.slow),
    pytest.param(conv_bn_model, tf.abs, id="bn-abs", marks=pytest.mark.slow),
    pytest.param(conv1d_model, tf.square, id="conv1d")])
def test_fast_paths_match_a_per_example_loop(build, transform):
    model, shape = build()
    rng = np.random.default_rng(2)
    set_moving_statistics(model, rng)
    x = rng.standard_normal((11, *shape)).astype(np.float32)
    targets = _losses.targets(LOSS, rng.integers(0, 3, 11), 3)
    params = prunable_params(model, "all")
    ctx = MeasureContext(model, params, x, targets, LOSS, batch_size=4)  # chunks of 4, 4, 3: one trace serves all
    fast, slow = _per_example.split(ctx)
    assert not slow and len(fast) == len(params)  # BatchNorm's gamma and beta no longer take vectorized_map
    scores = _per_example.per_example_mean(ctx, _losses.log_likelihood, (targets,), transform)
    for s, e, p in zip(scores, loop(model, ctx.variables, x, targets, transform), params, strict=True):
        np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-7, err_msg=p.name)
    assert all(float(np.abs(s).max()) > 0 for s in scores)
