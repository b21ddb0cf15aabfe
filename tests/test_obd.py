"""Reference tests for OBD: the full Hessian and an explicit J^T H_out J on tiny models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from measures import MeasureContext, make_measure, prunable_params
from measures.obd import OptimalBrainDamage
from tests.helpers import random_data, tiny_conv_model, tiny_dense_model

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
MSE = keras.losses.MeanSquaredError()
CASES = {"dense_ce": (tiny_dense_model, SPARSE), "conv_ce": (tiny_conv_model, SPARSE), "dense_mse": (tiny_dense_model, MSE)}


def case_data(name, n=20, seed=1):
    model_fn, loss = CASES[name]
    model = model_fn(seed=0)
    x, y = random_data(model, n=n, seed=seed)
    if loss is MSE:
        y = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    return model, loss, x, y


def score(spec, model, loss, x, y, seed=0):
    params = prunable_params(model, "kernels+biases")
    ctx = MeasureContext(model, params, x, y, loss, seed=seed, batch_size=8)
    return params, make_measure(spec).score(ctx)


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def full_hessian(model, variables, x, y, loss):
    """Hessian (P, P) of the Keras mean loss over all concatenated variables."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = loss(y, model(x, training=False))
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(value, variables)], 0)
    blocks = outer.jacobian(grad, variables)
    return tf.concat([tf.reshape(b, [grad.shape[0], -1]) for b in blocks], 1).numpy()


def explicit_ggn_diagonal(model, variables, x, y, per_example_loss):
    """diag((1/N) sum_n J_n^T H_out,n J_n), J from the full Jacobian, H_out by autodiff in the outputs."""
    with tf.GradientTape() as tape:
        out = model(x, training=False)
    jac = tape.jacobian(out, variables)
    jac = tf.concat([tf.reshape(j, [*out.shape, -1]) for j in jac], -1).numpy()  # (N, D, P)
    z = tf.constant(out)
    with tf.GradientTape() as outer:
        outer.watch(z)
        with tf.GradientTape() as inner:
            inner.watch(z)
            total = tf.reduce_sum(per_example_loss(y, z))
        grad = inner.gradient(total, z)
    h_out = outer.batch_jacobian(grad, z).numpy()  # (N, D, D)
    return np.einsum("ndp,nde,nep->p", jac, h_out, jac) / len(x)


def saliency(diagonal, variables):
    return 0.5 * diagonal * flat([v.numpy() for v in variables]) ** 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_exact_matches_full_hessian_diagonal(name):
    model, loss, x, y = case_data(name)
    params, scores = score("obd:hessian=exact", model, loss, x, y)
    variables = [p.variable for p in params]
    expected = saliency(np.diag(full_hessian(model, variables, x, y, loss)), variables)
    np.testing.assert_allclose(flat(scores), expected, rtol=1e-4, atol=1e-7)
    assert all(s.shape == p.shape and s.dtype == np.float32 for s, p in zip(scores, params, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_ggn_matches_explicit_jt_hout_j(name):
    model, loss, x, y = case_data(name)
    params, scores = score("obd", model, loss, x, y)
    variables = [p.variable for p in params]
    per_example = {SPARSE: lambda t, z: keras.losses.sparse_categorical_crossentropy(t, z, from_logits=True),
                   MSE: keras.losses.mean_squared_error}[loss]
    expected = saliency(explicit_ggn_diagonal(model, variables, x, y, per_example), variables)
    np.testing.assert_allclose(flat(scores), expected, rtol=1e-4, atol=1e-7)
    assert np.all(flat(scores) >= 0)


@pytest.mark.slow
def test_ggn_from_probabilities_splits_at_the_logits():
    base, _, x, y = case_data("dense_ce")
    probs_model = keras.Model(base.input, keras.layers.Softmax()(base.output))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    params, scores = score("obd", probs_model, loss, x, y)
    variables = [p.variable for p in params]
    ce = lambda t, z: keras.losses.sparse_categorical_crossentropy(t, z, from_logits=True)  # noqa: E731
    expected = saliency(explicit_ggn_diagonal(base, variables, x, y, ce), variables)
    np.testing.assert_allclose(flat(scores), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_hutchinson_converges_to_exact_and_ggn_does_not():
    model, loss, x, y = case_data("dense_ce")
    _, exact = score("obd:hessian=exact", model, loss, x, y)
    _, estimate = score("obd:hessian=hutchinson,samples=2000", model, loss, x, y, seed=3)
    _, ggn = score("obd", model, loss, x, y)
    error = lambda a: np.linalg.norm(flat(a) - flat(exact)) / np.linalg.norm(flat(exact))  # noqa: E731
    assert error(estimate) < 0.2  # about 0.1 expected: sum_j!=k H_kj^2 / m per entry
    assert error(ggn) > 0.5  # the tolerance separates the Hessian from its GGN


@pytest.mark.slow
def test_hutchinson_is_seeded():
    model, loss, x, y = case_data("dense_ce")
    first = score("obd:hessian=hutchinson,samples=20", model, loss, x, y, seed=5)[1]
    again = score("obd:hessian=hutchinson,samples=20", model, loss, x, y, seed=5)[1]
    other = score("obd:hessian=hutchinson,samples=20", model, loss, x, y, seed=6)[1]
    np.testing.assert_array_equal(flat(first), flat(again))
    assert not np.array_equal(flat(first), flat(other))


def test_exact_refuses_large_models_naming_the_size():
    model, loss, x, y = case_data("conv_ce")
    with pytest.raises(ValueError, match=r"140 prunable parameters exceed max_params=100"):
        score("obd:hessian=exact,max_params=100", model, loss, x, y)
    big = tiny_dense_model(n_in=100, n_hidden=60)
    x, y = random_data(big, n=4)
    with pytest.raises(ValueError, match=r"6243 prunable parameters exceed max_params=5000"):
        score("obd:hessian=exact", big, loss, x, y)


def test_ggn_rejects_unsupported_loss():
    model, _, x, y = case_data("dense_ce")
    with pytest.raises(ValueError, match=r"Received: loss=Hinge"):
        score("obd", model, keras.losses.Hinge(), x, y)


@pytest.mark.parametrize("options, message", [
    ({"hessian": "full"}, r"hessian must be one of \['ggn', 'hutchinson', 'exact'\]. Received: hessian='full'"),
    ({"samples": 0}, r"samples must be a positive integer. Received: samples=0"),
    ({"max_params": 2.5}, r"max_params must be a positive integer. Received: max_params=2.5"),
])
def test_invalid_options_are_quoted(options, message):
    with pytest.raises(ValueError, match=message):
        OptimalBrainDamage(**options)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["obd", "obd:hessian=exact", "obd:hessian=hutchinson,samples=8"])
def test_weights_untouched(spec):
    model, loss, x, y = case_data("conv_ce")
    before = [w.copy() for w in model.get_weights()]
    score(spec, model, loss, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
