"""Reference tests for the diagonal Fisher: a per-example GradientTape loop on tiny models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from measures.fisher import Fisher
from tests.helpers import Subclassed, random_data, tiny_conv_model, tiny_dense_model

RTOL, ATOL = 1e-4, 1e-7
CE = keras.losses.categorical_crossentropy
SPARSE_CE = keras.losses.sparse_categorical_crossentropy


def softmax_model(seed=0):
    base = tiny_dense_model(seed)
    return keras.Model(base.input, keras.layers.Softmax()(base.output), name="tiny_softmax")


def softmax_activation_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def one_hot(y, n=3):
    return np.eye(n, dtype=np.float32)[y]


# Each case: model, loss, how labels are given, and log p(y | x_n) from the model's output (1, C) and a label (1, ...),
# written with Keras' own loss functions; the true Fisher's expectation puts every class c in for y.
CASES = {
    "sparse_logits": (tiny_dense_model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), lambda y: y,
                      lambda out, y: -SPARSE_CE(y, out, from_logits=True)[0]),
    "conv_sparse_logits": (tiny_conv_model, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           lambda y: y, lambda out, y: -SPARSE_CE(y, out, from_logits=True)[0]),
    "sparse_probs": (softmax_model, keras.losses.SparseCategoricalCrossentropy(from_logits=False), lambda y: y,
                     lambda out, y: -SPARSE_CE(y, out, from_logits=False)[0]),
    "softmax_activation": (softmax_activation_model, keras.losses.SparseCategoricalCrossentropy(from_logits=False),
                           lambda y: y, lambda out, y: -SPARSE_CE(y, out, from_logits=False)[0]),
    "onehot_logits": (tiny_dense_model, keras.losses.CategoricalCrossentropy(from_logits=True), one_hot,
                      lambda out, y: -CE(y, out, from_logits=True)[0]),
    # Gaussian, unit variance: log p = -0.5 ||y - f||^2 = -0.5 * D * (Keras MSE, a mean over D = 3 outputs).
    "mse": (tiny_dense_model, keras.losses.MeanSquaredError(), None,
            lambda out, y: -0.5 * 3 * keras.losses.mean_squared_error(y, out)[0]),
}


def case_data(name, n=20, seed=1):
    model_fn, loss, labels, loglik = CASES[name]
    model = model_fn(seed=0)
    x, y = random_data(model, n=n, seed=seed)
    y = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32) if labels is None else labels(y)
    return model, loss, x, y, loglik


def loop_mean(model, variables, x, pairs_fn):
    """(1/N) sum_n sum_(w, s) w * (d s / d theta)^2 over the weighted scalars of example n, one example at a time."""
    total = [np.zeros(v.shape) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape(persistent=True) as tape:
            pairs = pairs_fn(model(x[n:n + 1], training=False), n)
        for w, s in pairs:
            for t, g in zip(total, tape.gradient(s, variables)):
                t += float(w) * np.square(g.numpy())
    return [t / len(x) for t in total]


def empirical_pairs(loglik, y):
    return lambda out, n: [(1.0, loglik(out, y[n:n + 1]))]


def true_pairs(name, loss, loglik):
    """The true Fisher by brute force: sum_c p_c (d log p_c)^2, or sum_j (d f_j)^2 for the unit Gaussian."""
    def pairs(out, n):
        if name == "mse":
            return [(1.0, out[0, j]) for j in range(3)]
        probs = (tf.nn.softmax(out) if loss.get_config()["from_logits"] else out).numpy()[0]
        labels = [one_hot(np.array([c])) if name == "onehot_logits" else np.array([c]) for c in range(3)]
        return [(probs[c], loglik(out, labels[c])) for c in range(3)]
    return pairs


def score(spec, model, loss, x, y, batch_size=8):
    params = prunable_params(model, "kernels+biases")
    return params, make_measure(spec).score(MeasureContext(model, params, x, y, loss, seed=0, batch_size=batch_size))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_empirical_fisher_matches_per_example_loop(name):
    model, loss, x, y, loglik = case_data(name)
    params, scores = score("fisher", model, loss, x, y)
    expected = loop_mean(model, [p.variable for p in params], x, empirical_pairs(loglik, y))
    for s, e in zip(scores, expected, strict=True):
        assert s.dtype == np.float32
        np.testing.assert_allclose(s, e, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_true_fisher_matches_exact_expectation_loop(name):
    model, loss, x, y, loglik = case_data(name)
    params, scores = score("fisher:kind=true", model, loss, x, y)
    expected = loop_mean(model, [p.variable for p in params], x, true_pairs(name, loss, loglik))
    for s, e in zip(scores, expected, strict=True):
        np.testing.assert_allclose(s, e, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_empirical_fisher_applies_label_smoothing_like_the_loss():
    model, _, x, y, _ = case_data("onehot_logits")
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    params, scores = score("fisher", model, loss, x, y)
    loglik = lambda out, t: -CE(t, out, from_logits=True, label_smoothing=0.2)[0]  # noqa: E731
    expected = loop_mean(model, [p.variable for p in params], x, empirical_pairs(loglik, y))
    for s, e in zip(scores, expected, strict=True):
        np.testing.assert_allclose(s, e, rtol=RTOL, atol=ATOL)


def subclassed_model():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model(np.zeros((1, 6), np.float32))
    return model, "kernels+biases", (6,)


def nested_model():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu")])
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(3)(inner(inputs))), "kernels+biases", (6,)


def batchnorm_all_model():
    """Kernels take the tapped path, BatchNorm's gamma and beta (prunable="all") the vectorized_map path."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.BatchNormalization(beta_initializer="random_normal")(keras.layers.Dense(5)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Activation("tanh")(hidden))), "all", (6,)


def sequence_model():
    """A Dense layer on (B, 4, 3) inputs: per-example gradients sum over the 4 positions."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 3))
    hidden = keras.layers.Dense(5, activation="tanh", bias_initializer="random_normal")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(hidden))), "kernels+biases", (4, 3)


def causal_conv1d_model():
    """Conv1D with causal padding and dilation: left-padded, so it takes the vectorized_map path."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((7, 2))
    hidden = keras.layers.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(hidden))), "kernels+biases", (7, 2)


@pytest.mark.slow
@pytest.mark.parametrize("build", [subclassed_model, nested_model, batchnorm_all_model, sequence_model,
                                   causal_conv1d_model])
@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_every_gradient_path_matches_loop(build, kind):
    model, prunable, input_shape = build()
    loss, loglik = CASES["sparse_logits"][1], CASES["sparse_logits"][3]
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, *input_shape)).astype(np.float32), rng.integers(0, 3, 20)
    params = prunable_params(model, prunable)
    ctx = MeasureContext(model, params, x, y, loss, seed=0, batch_size=8)
    scores = make_measure(f"fisher:kind={kind}").score(ctx)
    pairs = empirical_pairs(loglik, y) if kind == "empirical" else true_pairs("sparse_logits", loss, loglik)
    for s, e in zip(scores, loop_mean(model, [p.variable for p in params], x, pairs), strict=True):
        np.testing.assert_allclose(s, e, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_fisher_is_not_the_squared_batch_gradient():
    model, loss, x, y, loglik = case_data("sparse_logits")
    params, scores = score("fisher", model, loss, x, y)
    variables = [p.variable for p in params]
    with tf.GradientTape() as tape:
        mean_loglik = -loss(y, model(x, training=False))
    batch_squared = [np.square(g.numpy()) for g in tape.gradient(mean_loglik, variables)]
    flat_scores, flat_batch = np.concatenate([s.ravel() for s in scores]), np.concatenate([b.ravel() for b in batch_squared])
    assert np.all(flat_scores >= flat_batch - 1e-6)  # Jensen: mean of squares >= square of mean
    assert np.linalg.norm(flat_scores - flat_batch) > 0.5 * np.linalg.norm(flat_scores)


@pytest.mark.slow
def test_true_and_empirical_differ():
    model, loss, x, y, _ = case_data("sparse_logits")
    _, empirical = score("fisher", model, loss, x, y)
    _, true = score("fisher:kind=true", model, loss, x, y)
    assert not np.allclose(empirical[0], true[0], rtol=0.1)


@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_unsupported_loss_names_it(kind):
    model, _, x, y, _ = case_data("sparse_logits")
    with pytest.raises(ValueError, match=r"Received: loss=Hinge.*") as info:
        score(f"fisher:kind={kind}", model, keras.losses.Hinge(), x, y)
    assert "MeanSquaredError" in str(info.value) and "SparseCategoricalCrossentropy" in str(info.value)


def test_invalid_kind_is_quoted():
    with pytest.raises(ValueError, match=r"kind must be one of \['empirical', 'true'\]. Received: kind='x'"):
        Fisher(kind="x")


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["fisher", "fisher:kind=true"])
def test_weights_untouched(spec):
    model, loss, x, y, _ = case_data("conv_sparse_logits")
    before = [w.copy() for w in model.get_weights()]
    score(spec, model, loss, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
